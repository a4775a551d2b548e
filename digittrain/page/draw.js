// The drawing page of `digittrain serve`: draw with mouse, pen or finger (Pointer Events); after
// each stroke the canvas goes to POST predict as PNG and the answer is shown: the digit, one bar
// per class, and the image the model saw. When the server collects, "save as N" posts the drawing
// to POST save?label=N. URLs are relative, so the page also works behind a path prefix.
"use strict";

const INK = 18; // stroke width in canvas pixels: a marker on the 280-pixel paper
const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d");
const digit = document.getElementById("digit");
const seen = document.getElementById("seen");
const bars = document.getElementById("bars");
const message = document.getElementById("message");
const saved = document.getElementById("saved");

let stroke = null; // the pointer drawing now, and where it was last
let drawn = false; // ink on the paper since the last clear
let asked = 0; // number of the latest prediction asked for; older answers are dropped
let collecting = false;

function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function clearPaper() {
  pen.fillStyle = "#fff"; // opaque white paper: the PNG is black ink on white, like a scan
  pen.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false;
  asked += 1; // an answer still on its way is about the old drawing
  showNothing("draw a digit");
}

function showNothing(text, isError = false) {
  digit.textContent = "";
  seen.removeAttribute("src");
  for (const bar of bars.children) {
    bar.classList.remove("best");
    bar.querySelector(".fill").style.width = "0";
    bar.querySelector(".value").textContent = "";
  }
  say(message, text, isError);
}

function at(event) {
  // The canvas's own pixels: inside its border, scaled when CSS shows it at another size.
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left - canvas.clientLeft) * canvas.width) / canvas.clientWidth,
    ((event.clientY - box.top - canvas.clientTop) * canvas.height) / canvas.clientHeight,
  ];
}

function line(from, to) {
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
}

canvas.addEventListener("pointerdown", (event) => {
  if (stroke !== null || event.button !== 0) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  stroke = { id: event.pointerId, last: at(event) };
  line(stroke.last, stroke.last); // a tap leaves a dot
});

canvas.addEventListener("pointermove", (event) => {
  if (stroke === null || event.pointerId !== stroke.id) return;
  // A fast pen sends several positions per frame; all of them make a smoother line.
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const move of moves.length ? moves : [event]) {
    const point = at(move);
    line(stroke.last, point);
    stroke.last = point;
  }
});

function endStroke(event) {
  if (stroke === null || event.pointerId !== stroke.id) return;
  stroke = null;
  drawn = true;
  if (saved.classList.contains("error")) say(saved, ""); // "draw a digit first" is answered
  predict();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function png() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function post(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "image/png" }, body });
  let answer;
  try {
    answer = await response.json();
  } catch {
    throw new Error(`the server answered ${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  return answer;
}

async function predict() {
  const mine = ++asked;
  bars.dataset.asked = String(mine); // with data-shown: a test (or a curious user) sees which answer is up
  let answer;
  try {
    answer = await post("predict", await png());
  } catch (error) {
    if (mine === asked) showNothing(error.message, true);
    return;
  }
  if (mine !== asked) return; // a later stroke's answer is on its way
  if (answer.digit === null) {
    showNothing(answer.message || "draw a digit");
    return;
  }
  show(answer);
  bars.dataset.shown = String(mine);
}

function show(answer) {
  digit.textContent = String(answer.digit);
  seen.src = answer.seen;
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  answer.classes.forEach((label, i) => {
    const bar = bars.querySelector(`.bar[data-class="${label}"]`);
    const p = answer.probabilities[i];
    bar.classList.toggle("best", i === best);
    bar.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bar.querySelector(".value").textContent = p.toFixed(3);
  });
  say(message, "");
}

async function save(label) {
  if (!drawn) {
    say(saved, "draw a digit first", true);
    return;
  }
  // The drawing is taken and the paper cleared at the press, not when the server answers: a
  // digit begun while the save is on its way is the next drawing, never part of this one.
  const drawing = pen.getImageData(0, 0, canvas.width, canvas.height);
  const pending = png(); // toBlob copies the bitmap now, so the paper can be cleared before it is coded
  clearPaper();
  say(saved, `saving as ${label}...`);
  try {
    const answer = await post(`save?label=${label}`, await pending);
    say(saved, `saved ${answer.saved}`);
  } catch (error) {
    say(saved, error.message, true);
    if (!drawn && stroke === null) {
      pen.putImageData(drawing, 0, 0); // not saved: the drawing back, to save again
      drawn = true;
      predict();
    }
  }
}

function buildBars(classes) {
  for (const label of classes) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.dataset.class = String(label);
    bar.innerHTML = '<span class="class"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    bar.querySelector(".class").textContent = String(label);
    bars.append(bar);
  }
}

function buildSaves(folder) {
  const saves = document.getElementById("saves");
  for (let label = 0; label <= 9; label++) {
    const button = document.createElement("button");
    button.type = "button";
    button.id = `save-${label}`;
    button.textContent = String(label); // under the caption "save as"
    button.setAttribute("aria-label", `save as ${label}`);
    button.title = `save as ${label} (key ${label})`;
    button.addEventListener("click", () => save(label));
    saves.append(button);
  }
  document.getElementById("collect").hidden = false;
  say(saved, `saving into ${folder}`);
}

document.getElementById("clear").addEventListener("click", clearPaper);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape") clearPaper();
  else if (collecting && /^[0-9]$/.test(event.key)) save(Number(event.key));
});

async function start() {
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.lineWidth = INK;
  pen.strokeStyle = "#000";
  clearPaper();
  try {
    const response = await fetch("info");
    const info = await response.json();
    buildBars(info.classes);
    collecting = info.collect;
    if (collecting) buildSaves(info.collect_dir);
    document.getElementById("about").textContent =
      `model: ${info.model}, ${info.size}x${info.size} inputs, classes ${info.classes.join(" ")}`;
    document.body.dataset.ready = "true";
  } catch (error) {
    say(message, `cannot reach the server: ${error.message}`, true);
  }
}

start();
