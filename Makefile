# digitprep / digittrain: fresh machine -> `make all` (set up, build data) and `make test`.
# Every target creates and uses .venv itself; nothing is installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

SIZES  ?= 8 20
RAW    ?= data/raw
PROC   := data/processed
DESKEW ?= 1
CENTER ?= 1

NORMALIZE := $(if $(filter 1,$(DESKEW)),--deskew,--no-deskew) $(if $(filter 1,$(CENTER)),--center,--no-center)
SIZE_FLAGS := $(foreach s,$(SIZES),--size $(s))

.PHONY: all venv dataset mnist test bench lint clean distclean

all: dataset
	@echo "Data sets written to $(PROC)/: $(foreach s,$(SIZES),digits_$(s).csv)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Embedded default data: scikit-learn's bundled handwritten 8x8 digits as labelled PNGs.
$(RAW)/sklearn/.done: $(STAMP)
	$(BIN)/digitprep digits --out-dir $(RAW)/sklearn
	touch $@

dataset: $(PROC)/digits.stamp

$(PROC)/digits.stamp: $(RAW)/sklearn/.done $(STAMP) Makefile
	$(BIN)/digitprep build $(RAW)/sklearn $(SIZE_FLAGS) $(NORMALIZE) --quiet --out $(PROC)/digits.csv
	touch $@

# MNIST: the four IDX files from the public mirror (MD5-checked), then PNG trees that `build` reads:
# $(MNIST)/training/<digit>/<index>.png and $(MNIST)/testing/... A rerun with everything in place does
# nothing. One pattern rule with several targets (% matches the ".") is make's way of saying that one
# run of the recipe makes all four files.
MNIST := $(RAW)/mnist
MNIST_MIRROR ?=

mnist: $(MNIST)/training/.done $(MNIST)/testing/.done

$(MNIST)/train-images-idx3-ubyte%gz $(MNIST)/train-labels-idx1-ubyte%gz \
$(MNIST)/t10k-images-idx3-ubyte%gz $(MNIST)/t10k-labels-idx1-ubyte%gz: | $(STAMP)
	$(BIN)/digitprep fetch-mnist $(MNIST) $(foreach m,$(MNIST_MIRROR),--mirror $(m))

$(MNIST)/training/.done: $(MNIST)/train-images-idx3-ubyte.gz $(MNIST)/train-labels-idx1-ubyte.gz
	$(BIN)/digitprep mnist $< --out-dir $(@D)
	touch $@

$(MNIST)/testing/.done: $(MNIST)/t10k-images-idx3-ubyte.gz $(MNIST)/t10k-labels-idx1-ubyte.gz
	$(BIN)/digitprep mnist $< --out-dir $(@D)
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/prep.py
	$(BIN)/python bench/mnist_csv.py

clean:
	rm -rf $(PROC)/*.csv $(PROC)/*.json $(PROC)/*.stamp reports

distclean: clean
	rm -rf $(VENV) data/cache $(RAW)/sklearn $(MNIST)
