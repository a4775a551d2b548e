"""One name per concept across `digitprep` and `digittrain` (issue 14): lists are comma lists (--sizes 20,8,
--drawing-sizes), the old flags are gone, both tools have --version, `python -m`, and an Examples section
in every --help whose command lines use that command's own flags."""

import shlex
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner, Result
from conftest import drawn_digit, write_image

import digitprep.__main__
import digittrain
import digittrain.__main__
from digitprep.cli import main as digitprep_main
from digitprep.csvio import read_onehot_csv
from digittrain.cli import main as digittrain_main

TOOLS = {"digitprep": digitprep_main, "digittrain": digittrain_main}


def invoke(tool: str, *args) -> Result:
    return CliRunner().invoke(TOOLS[tool], [str(arg) for arg in args])


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def test_sizes_is_a_comma_list_in_the_order_given_with_duplicates_dropped(tmp_path):
    for digit in "123":
        write_image(tmp_path / "src" / digit / "a.png", drawn_digit(digit))
    result = invoke("digitprep", "build", tmp_path / "src", "--sizes", " 8, 20,8", "--out", tmp_path / "d.csv")
    assert result.exit_code == 0, result.output
    assert "to " + ", ".join(str(tmp_path / f"d_{n}.csv") for n in (8, 20)) in result.output
    for side in (8, 20):
        pixels, labels, _ = read_onehot_csv(tmp_path / f"d_{side}.csv")
        assert pixels.shape == (3, side * side) and sorted(labels) == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("d*.csv") if p.name.count(".") == 1) == ["d_20.csv", "d_8.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("digitprep", "build", ".", "--sizes", "20,x", "--out", "y.csv"), "'x' is not a valid integer (in '20,x')"),
        (
            ("digitprep", "build", ".", "--sizes", "20,,8", "--out", "y.csv"),
            "'20,,8' has an empty entry; give a comma list such as 20,8",
        ),
        (("digitprep", "mnist", "x.csv", "--sizes", "600", "--out", "y.csv"), "600 is not in the range 2<=x<=512"),
        (
            ("digitprep", "render", "--out-dir", "y", "--drawing-sizes", "20,9"),
            "'9' is not one of '20', '8' (in '20,9')",
        ),
        (("digittrain", "compare", "--data", ".", "--sizes", "8,1"), "1 is not in the range 2<=x<=512 (in '8,1')"),
    ],
)
def test_a_bad_list_is_one_line_naming_the_option(tmp_path, args, message):
    (tmp_path / "x.csv").write_text("isZero\n")
    tool, *rest = args
    result = CliRunner().invoke(
        TOOLS[tool], [str(tmp_path / a) if a in (".", "x.csv", "y.csv", "y") else a for a in rest]
    )
    assert result.exit_code == 2
    option = next(arg for arg in rest if arg.startswith("--") and arg not in ("--out", "--out-dir", "--data"))
    assert error_lines(result) == [f"Error: Invalid value for '{option}': {message}"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ("digitprep", "build", ".", "--size", "20", "--size", "8", "--out", "x.csv"),
        ("digitprep", "mnist", ".", "--size", "28", "--out", "x.csv"),
        ("digitprep", "split", "x.csv", "--test", "0.2"),
        ("digitprep", "mix", "x.csv", "--tag", "8", "--out", "y.csv"),
        ("digitprep", "render", "--out-dir", ".", "--tags", "20"),
        ("digitprep", "show", "x.csv", "--scale", "2", "--out", "s.png"),
        ("digitprep", "augment", "x.csv", "--scale", "0.1", "--out", "y.csv"),
        ("digittrain", "--scale", "standard"),
        ("digittrain", "compare", "--scale", "mnist"),
    ],
)
def test_the_old_names_are_gone(tmp_path, args):
    (tmp_path / "x.csv").write_text("isZero\n")
    tool, *rest = args
    result = CliRunner().invoke(TOOLS[tool], [str(tmp_path / a) if a in (".", "x.csv") else a for a in rest])
    old = next(arg for arg in rest if arg.startswith("--") and arg not in ("--out", "--out-dir"))
    assert result.exit_code == 2 and f"No such option '{old}'" in result.output, result.output


def test_digittrain_version_is_the_package_version():
    result = invoke("digittrain", "--version")
    assert (result.exit_code, result.output) == (0, f"digittrain, version {digittrain.__version__}\n")
    assert invoke("digitprep", "--version").output == f"digitprep, version {digitprep.__version__}\n"


def test_python_m_digittrain_runs_the_command():
    run = subprocess.run([sys.executable, "-m", "digittrain", "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Usage: python -m digittrain [OPTIONS] [COMMAND] [ARGS]...")
    assert "--input-scaling" in run.stdout and "Examples:" in run.stdout


@pytest.mark.parametrize("package", [digitprep.__main__, digittrain.__main__])
def test_ctrl_c_while_the_command_loads_exits_130_quietly(package, monkeypatch):
    class Interrupted(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    cli = package.__name__.replace("__main__", "cli")
    monkeypatch.setitem(sys.modules, cli, Interrupted(cli))
    with pytest.raises(SystemExit) as stopped:
        package.run()
    assert stopped.value.code == 130


def commands():
    """(tool, subcommand path, command) for both groups and every command in them."""
    for tool, group in TOOLS.items():
        yield pytest.param(tool, (), group, id=tool)
        for name, command in group.commands.items():
            yield pytest.param(tool, (name,), command, id=f"{tool} {name}")


@pytest.mark.parametrize(("tool", "path", "command"), list(commands()))
def test_every_help_ends_with_examples_using_the_commands_own_flags(tool, path, command):
    result = CliRunner().invoke(TOOLS[tool], [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0
    _, examples = result.output.split("\n  Examples:\n")
    lines = [shlex.split(line, comments=True) for line in examples.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3
    for words in lines:  # each one whole, unwrapped command line: `TOOL [SUBCOMMAND] ...`
        assert words[0] == tool, examples
        used = TOOLS[tool].commands.get(words[1], TOOLS[tool]) if len(words) > 1 else TOOLS[tool]
        assert path == () or used is command, words
        flags = {flag for param in used.params for flag in (*param.opts, *param.secondary_opts)}
        assert {word for word in words if word.startswith("--")} <= flags, words


@pytest.mark.parametrize(
    "tool, args, message",
    [
        ("digittrain", ["--l2", "nan"], "Error: Invalid value for '--l2': 'nan' is not a finite number."),
        ("digittrain", ["--bogus"], "Error: No such option '--bogus'."),
        ("digittrain", ["evaluate"], "Error: Missing argument 'MODEL'."),
        (
            "digitprep",
            ["build", ".", "--box", "nan"],
            "Error: Invalid value for '--box': 'nan' is not a finite number.",
        ),
        ("digitprep", ["--bogus"], "Error: No such option '--bogus'."),
        ("digitprep", ["build", ".", "--pattern", "("], "Error: Invalid value for '--pattern': '(' is not a regular"),
    ],
)
def test_every_option_error_is_one_line_with_exit_2(tool, args, message):
    """A usage error is the one line that says what is wrong: no usage and help lines above it, at the
    group level (digittrain's training options) as in a subcommand."""
    result = invoke(tool, *args)
    assert result.exit_code == 2
    assert len(result.output.splitlines()) == 1 and result.output.startswith(message), result.output
