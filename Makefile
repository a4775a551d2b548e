# digitprep / digittrain. On a fresh machine: `make all` (set up, embedded data, data sets, training,
# comparison) and `make test`. Every target creates and uses .venv itself; nothing is installed by hand.
#
# The data pipeline, per variant (deskew/centre on in $(PROC); off in $(PROC)/plain when ABLATE=1):
#   raw PNGs of each origin --build (every size at once)--> parts/ORIGIN_SIZE.csv
#   --split (stratified, seeded, by source file)--> parts/ORIGIN_SIZE_{train,test}.csv
#   --mix (all origins; per size only the rows drawn at that size, when the data has such tags)-->
#   train_SIZE / test_SIZE, train_mixed / test_mixed (every row at MIXED_SIZE), test_all_SIZE
#   (every test row at SIZE, for evaluating each model on each subset)
#   --augment (training side only, AUGMENT copies)--> train_*.csv
# Every step writes atomically and finishes by touching its target, so an interrupted `make` followed
# by `make` completes correctly; options live in small files rewritten only when they change, so
# changing one rebuilds exactly what it affects.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# ---- what to build (override on the command line: make dataset SIZES="8 20 28" AUGMENT=2)
SIZES         ?= 8 20
MIXED_SIZE    ?= 20
TRAIN_SIZE    ?= 20
# Drawing sizes the original project's file names carry as tags: the set of such a size keeps only
# the rows drawn at that size (and untagged rows); the mixed set has them all.
DRAWING_SIZES ?= 8 20
DESKEW        ?= 1
CENTER        ?= 1
BOX           ?=
TEST_SHARE    ?= 0.2
SEED          ?= 0
AUGMENT       ?= 0
AUGMENT_FLAGS ?=
ABLATE        ?= 1
JOBS          ?= 0
RAW           ?=
MNIST         ?= 0
# MNIST gets folders of its own, so switching between it and the default data rebuilds neither.
PROC          ?= data/processed$(if $(filter 1,$(MNIST)),/mnist)
REPORTS       ?= reports$(if $(filter 1,$(MNIST)),/mnist)
TRAIN_FLAGS   ?= --hidden 256,256 --activation relu --optimizer adam --lr 0.001 --lr-schedule cosine \
                 --epochs 40 --batch-size 32 --l2 0.0001 --label-smoothing 0.1
COMPARE_FLAGS ?= $(TRAIN_FLAGS)

MNIST_DIR    := data/raw/mnist
MNIST_MIRROR ?=
BUILD_SIZES  := $(sort $(SIZES) $(MIXED_SIZE))
NORMALIZED   := $(if $(filter 1,$(DESKEW)),--deskew,--no-deskew) $(if $(filter 1,$(CENTER)),--center,--no-center) \
                $(if $(BOX),--box $(BOX))
VARIANTS     := $(PROC) $(if $(filter 1,$(ABLATE)),$(PROC)/plain)

# ---- origins: name, folder, how labels are read, and the stamp that says the folder is complete
# MNIST=1: MNIST's own split (training -> train, testing -> test), after `make mnist`.
# RAW="dir ...": a person's folders, one origin each (named after the folder), labels read by `auto`.
# Otherwise the embedded default data, generated below.
ifeq ($(MNIST),1)
  ORIGINS := training testing
  $(foreach o,$(ORIGINS),$(eval dir_$(o) := $(MNIST_DIR)/$(o))$(eval ready_$(o) := $(MNIST_DIR)/$(o)/.done))
  $(foreach o,$(ORIGINS),$(eval labels_$(o) := folder))
else ifneq ($(RAW),)
  ORIGINS := $(foreach r,$(RAW),$(notdir $(patsubst %/,%,$(r))))
  $(foreach r,$(RAW),$(eval dir_$(notdir $(patsubst %/,%,$(r))) := $(r)))
  $(foreach o,$(ORIGINS),$(eval labels_$(o) := auto))
else
  ORIGINS := fonts sklearn
  $(foreach o,$(ORIGINS),$(eval dir_$(o) := data/raw/$(o))$(eval ready_$(o) := data/raw/$(o)/.done))
  $(foreach o,$(ORIGINS),$(eval labels_$(o) := name))
endif

# Every PNG and folder of a source is a prerequisite: touching or adding one file rebuilds its origin.
sources_of = $(shell find $(1) \( -name '*.png' -o -type d \) 2>/dev/null)

# Rewrite an options file only when its text changes (at parse time, so that `make` with nothing to
# do still says "Nothing to be done"); not under `make -n`, which must not change anything.
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
remember = $(if $(DRY_RUN),,$(shell mkdir -p $(dir $(1)) && \
    { [ "$$(cat $(1) 2>/dev/null)" = '$(2)' ] || printf '%s\n' '$(2)' > $(1); }))

# Parts of one size, one variant: the training and test inputs of the mix, and the stamps behind them.
ifeq ($(MNIST),1)
  train_parts = $(1)/parts/training_$(2).csv
  test_parts  = $(1)/parts/testing_$(2).csv
  part_stamps = $(1)/parts/training.built $(1)/parts/testing.built
else
  train_parts = $(foreach o,$(ORIGINS),$(1)/parts/$(o)_$(2)_train.csv)
  test_parts  = $(foreach o,$(ORIGINS),$(1)/parts/$(o)_$(2)_test.csv)
  part_stamps = $(foreach o,$(ORIGINS),$(1)/parts/$(o)_$(2).split)
endif
tag_filter = $(if $(filter $(1),$(DRAWING_SIZES)),--tag $(1) --tag none)
normalize_flags = $(if $(filter $(PROC)/plain,$(1)),--no-deskew --no-center,$(NORMALIZED))

# $(1) variant folder, $(2) origin
define BUILD_ORIGIN
$(1)/parts/$(2).built: $(ready_$(2)) $(call sources_of,$(dir_$(2))) $(1)/parts/build.opts | $(STAMP)
	$(BIN)/digitprep build $(dir_$(2)) --labels $(labels_$(2)) --origin $(2) $(foreach s,$(BUILD_SIZES),--size $(s)) \
	    $(call normalize_flags,$(1)) --jobs $(JOBS) --quiet --out $(1)/parts/$(2).csv
	touch $$@
endef

# $(1) variant folder, $(2) origin, $(3) size
define SPLIT_ORIGIN
$(1)/parts/$(2)_$(3).split: $(1)/parts/$(2).built $(1)/parts/split.opts | $(STAMP)
	$(BIN)/digitprep split $(1)/parts/$(2)_$(3).csv --test $(TEST_SHARE) --seed $(SEED) --by path \
	    --train-out $(1)/parts/$(2)_$(3)_train.csv --test-out $(1)/parts/$(2)_$(3)_test.csv
	touch $$@
endef

# $(1) variant folder, $(2) set name (a size, "all_SIZE" or "mixed"), $(3) its image size, $(4) row filter
define TEST_SET
$(1)/test_$(2).csv: $(call part_stamps,$(1),$(3)) | $(STAMP)
	$(BIN)/digitprep mix $(call test_parts,$(1),$(3)) $(4) --out $$@
endef

# The training side, written by the mix itself (AUGMENT=0) ...
define TRAIN_SET
$(1)/train_$(2).csv: $(call part_stamps,$(1),$(3)) $(1)/parts/augment.opts | $(STAMP)
	$(BIN)/digitprep mix $(call train_parts,$(1),$(3)) $(4) --out $$@
endef

# ... or mixed into parts/ and augmented from there: after the split, so only training rows get copies.
define AUGMENTED_TRAIN_SET
$(1)/parts/train_$(2).csv: $(call part_stamps,$(1),$(3)) | $(STAMP)
	$(BIN)/digitprep mix $(call train_parts,$(1),$(3)) $(4) --out $$@
$(1)/train_$(2).csv: $(1)/parts/train_$(2).csv $(1)/parts/augment.opts | $(STAMP)
	$(BIN)/digitprep augment --copies $(AUGMENT) --seed $(SEED) --jobs $(JOBS) $(AUGMENT_FLAGS) $$< --out $$@
endef
TRAINING_RULES := $(if $(filter-out 0,$(AUGMENT)),AUGMENTED_TRAIN_SET,TRAIN_SET)

# $(1) variant folder
define VARIANT
$(call remember,$(1)/parts/build.opts,sizes=$(BUILD_SIZES) $(call normalize_flags,$(1)) origins=$(ORIGINS))
$(call remember,$(1)/parts/split.opts,test=$(TEST_SHARE) seed=$(SEED))
$(call remember,$(1)/parts/augment.opts,copies=$(AUGMENT) seed=$(SEED) $(AUGMENT_FLAGS))
$(foreach o,$(ORIGINS),$(eval $(call BUILD_ORIGIN,$(1),$(o))))
$(if $(filter 1,$(MNIST)),,$(foreach o,$(ORIGINS),$(foreach s,$(BUILD_SIZES),$(eval $(call SPLIT_ORIGIN,$(1),$(o),$(s))))))
$(foreach s,$(SIZES),$(eval $(call TEST_SET,$(1),$(s),$(s),$(call tag_filter,$(s))))$(eval $(call TEST_SET,$(1),all_$(s),$(s),)))
$(foreach s,$(SIZES),$(eval $(call $(TRAINING_RULES),$(1),$(s),$(s),$(call tag_filter,$(s)))))
$(eval $(call TEST_SET,$(1),mixed,$(MIXED_SIZE),))
$(eval $(call $(TRAINING_RULES),$(1),mixed,$(MIXED_SIZE),))
endef

# MNIST has one origin and no drawing sizes: its mixed set would be train_MIXED_SIZE again.
MIXED := $(if $(filter 1,$(MNIST)),,mixed)
dataset_files = $(foreach s,$(SIZES),$(1)/train_$(s).csv $(1)/test_$(s).csv $(1)/test_all_$(s).csv) \
                $(foreach m,$(MIXED),$(1)/train_$(m).csv $(1)/test_$(m).csv)

ifeq ($(filter venv test lint clean distclean,$(MAKECMDGOALS)),)
$(foreach v,$(VARIANTS),$(eval $(call VARIANT,$(v))))
endif

.PHONY: all venv data dataset train compare mnist test bench lint clean distclean
.DELETE_ON_ERROR:

all: train compare
	@echo "Report: $(REPORTS)/compare.md (table), $(REPORTS)/compare.png (chart); model: $(REPORTS)/model_$(TRAIN_SIZE).npz, curves_$(TRAIN_SIZE).png; every run: $(REPORTS)/results.csv"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# ---- embedded default data: fonts rendered at both drawing sizes, scikit-learn's handwritten 8x8 digits
data: data/raw/fonts/.done data/raw/sklearn/.done

data/raw/fonts/.done: | $(STAMP)
	$(BIN)/digitprep render --out-dir $(@D) --quiet
	touch $@

data/raw/sklearn/.done: | $(STAMP)
	$(BIN)/digitprep digits --out-dir $(@D)
	touch $@

# ---- MNIST: the four IDX files from the public mirror (MD5-checked), then PNG trees `build` reads:
# $(MNIST_DIR)/training/<digit>/<index>.png and $(MNIST_DIR)/testing/... A rerun with everything in
# place does nothing. One pattern rule with several targets (% matches the ".") is make's way of
# saying that one run of the recipe makes all four files.
mnist: $(MNIST_DIR)/training/.done $(MNIST_DIR)/testing/.done

$(MNIST_DIR)/train-images-idx3-ubyte%gz $(MNIST_DIR)/train-labels-idx1-ubyte%gz \
$(MNIST_DIR)/t10k-images-idx3-ubyte%gz $(MNIST_DIR)/t10k-labels-idx1-ubyte%gz: | $(STAMP)
	$(BIN)/digitprep fetch-mnist $(MNIST_DIR) $(foreach m,$(MNIST_MIRROR),--mirror $(m))

$(MNIST_DIR)/training/.done: $(MNIST_DIR)/train-images-idx3-ubyte.gz $(MNIST_DIR)/train-labels-idx1-ubyte.gz
	$(BIN)/digitprep mnist $< --out-dir $(@D)
	touch $@

$(MNIST_DIR)/testing/.done: $(MNIST_DIR)/t10k-images-idx3-ubyte.gz $(MNIST_DIR)/t10k-labels-idx1-ubyte.gz
	$(BIN)/digitprep mnist $< --out-dir $(@D)
	touch $@

# ---- data sets, training, comparison
dataset: $(call dataset_files,$(PROC))

$(REPORTS)/model_$(TRAIN_SIZE).npz: $(PROC)/train_$(TRAIN_SIZE).csv $(PROC)/test_$(TRAIN_SIZE).csv | $(STAMP)
	$(BIN)/digittrain --size $(TRAIN_SIZE) --train $(PROC)/train_$(TRAIN_SIZE).csv --test $(PROC)/test_$(TRAIN_SIZE).csv \
	    $(TRAIN_FLAGS) --report 10 --save $@ --plot $(REPORTS)/curves_$(TRAIN_SIZE).png --results $(REPORTS)/results.csv

train: $(REPORTS)/model_$(TRAIN_SIZE).npz

$(REPORTS)/compare.md: $(foreach v,$(VARIANTS),$(call dataset_files,$(v))) | $(STAMP)
	$(BIN)/digittrain compare --data $(PROC) --sizes $(subst $(space),$(comma),$(strip $(SIZES))) \
	    $(if $(MIXED),,--no-mixed) $(if $(filter 1,$(ABLATE)),--ablate $(PROC)/plain) $(COMPARE_FLAGS) --out-dir $(REPORTS)

compare: $(REPORTS)/compare.md

comma := ,
space := $() $()

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/prep.py
	$(BIN)/python bench/mnist_csv.py
	$(BIN)/python bench/augment.py

clean:
	rm -rf $(PROC)/parts $(PROC)/plain $(PROC)/*.csv $(PROC)/*.json $(REPORTS)

distclean: clean
	rm -rf $(VENV) data/cache data/raw/sklearn data/raw/fonts data/raw/mnist
