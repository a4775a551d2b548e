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

.PHONY: all venv dataset fonts test bench lint clean distclean

all: dataset fonts
	@echo "Data sets written to $(PROC)/: $(foreach s,$(SIZES),digits_$(s).csv fonts_$(s).csv)"

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

# Digits rendered from every usable font (matplotlib's bundled ones and the system's), tags 20 and 8.
$(RAW)/fonts/.done: $(STAMP)
	$(BIN)/digitprep render --out-dir $(RAW)/fonts --quiet
	touch $@

fonts: $(PROC)/fonts.stamp

$(PROC)/fonts.stamp: $(RAW)/fonts/.done $(STAMP) Makefile
	$(BIN)/digitprep build $(RAW)/fonts --labels name $(SIZE_FLAGS) $(NORMALIZE) --quiet --out $(PROC)/fonts.csv
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/prep.py
	$(BIN)/python bench/augment.py

clean:
	rm -rf $(PROC)/*.csv $(PROC)/*.json $(PROC)/*.stamp reports

distclean: clean
	rm -rf $(VENV) data/cache $(RAW)/sklearn $(RAW)/fonts
