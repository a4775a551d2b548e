# digitprep / digittrain. On a fresh machine: `make all` (set up, embedded data, data sets, training,
# comparison) and `make test`. Every target creates and uses .venv itself; nothing is installed by hand.
# A bare `make` lists the targets and variables (`make help`).
#
# The data pipeline, per variant (deskew/centre on in $(PROC); off in $(PROC)/plain when ABLATE=1):
#   raw images of each origin --build (every size at once)--> parts/ORIGIN_SIZE.csv
#   --split (stratified, seeded, by source file)--> parts/ORIGIN_SIZE_{train,test}.csv
#   --mix (all origins; per size only the rows drawn at that size, when the data has such tags)-->
#   train_SIZE / test_SIZE, train_mixed / test_mixed (every row at MIXED_SIZE), test_all_SIZE
#   (every test row at SIZE, for evaluating each model on each subset)
#   --augment (training side only, AUGMENT copies)--> train_*.csv
# then digittrain on train_TRAIN_SIZE (`make train`) and digittrain compare on every set (`make compare`).
# Every step writes atomically and finishes by touching its target, so an interrupted `make` followed
# by `make` completes correctly. Options live in small files (PROC/parts/*.opts for the data,
# REPORTS/model_SIZE.opts and REPORTS/compare.opts for the digittrain flags) that are rewritten only
# when their text changes, and every target depends on its own: changing one option rebuilds exactly
# what it affects, and an unchanged rerun says "Nothing to be done". Under `make -n` / `make -q` an
# options file that would change is reported as out of date but not written.
# Recipes print one line per step; `make V=1` prints the full commands.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
.DEFAULT_GOAL := help

comma := ,
space := $() $()

# ---- what to build (override on the command line: make dataset SIZES=8,20,28 AUGMENT=2)
SIZES         ?= 8,20
MIXED_SIZE    ?= 20
TRAIN_SIZE    ?= 20
# Drawing sizes the original project's file names carry as tags: the set of such a size keeps only
# the rows drawn at that size (and untagged rows); the mixed set has them all. A person's folders
# (RAW) keep every row in every set unless asked: their tags are whatever they drew at (280, the
# drawing page's canvas), not the embedded data's 8 and 20.
DRAWING_SIZES ?= $(if $(RAW),,8$(comma)20)
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
V             ?= 0

# ---- how to train (`make train` and `make compare`). These four are merged into the default flag
# set; TRAIN_FLAGS / COMPARE_FLAGS are further digittrain flags for one of the two, appended after
# everything else, so that a flag given there wins over the same flag of the default set.
HIDDEN        ?= 256,256
LR            ?= 0.001
EPOCHS        ?= 40
BATCH         ?= 32
TRAIN_FLAGS   ?=
COMPARE_FLAGS ?=
MODEL_FLAGS    = --hidden $(HIDDEN) --activation relu --optimizer adam --lr $(LR) --lr-schedule cosine \
                 --epochs $(EPOCHS) --batch-size $(BATCH) --l2 0.0001 --label-smoothing 0.1

# ---- `make form`: a blank form to print, fill in by hand, photograph and cut with `digitprep slice`.
FORM       ?= reports/form.pdf
FORM_FLAGS ?=

MNIST_DIR    := data/raw/mnist
MNIST_MIRROR ?=
# SIZES and DRAWING_SIZES are comma lists, as digitprep's --sizes; make wants words.
words_of     = $(strip $(subst $(comma),$(space),$(1)))
commas_of    = $(subst $(space),$(comma),$(strip $(1)))
SIZE_LIST    := $(call words_of,$(SIZES))
BUILD_SIZES  := $(sort $(SIZE_LIST) $(MIXED_SIZE))
NORMALIZED   := $(if $(filter 1,$(DESKEW)),--deskew,--no-deskew) $(if $(filter 1,$(CENTER)),--center,--no-center) \
                $(if $(BOX),--box $(BOX))

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
  $(if $(filter-out $(words $(ORIGINS)),$(words $(sort $(ORIGINS)))),\
    $(error RAW="$(RAW)": two folders with one name; each folder is an origin named after it, so rename one))
  $(foreach r,$(RAW),$(eval dir_$(notdir $(patsubst %/,%,$(r))) := $(r)))
  $(foreach o,$(ORIGINS),$(eval labels_$(o) := auto))
else
  ORIGINS := fonts sklearn
  $(foreach o,$(ORIGINS),$(eval dir_$(o) := data/raw/$(o))$(eval ready_$(o) := data/raw/$(o)/.done))
  $(foreach o,$(ORIGINS),$(eval labels_$(o) := name))
endif

# MNIST and a person's folders get folders of their own (RAW="my/hand my/font": data/processed/raw/
# hand+font and reports/raw/hand+font), so switching between them and the default data rebuilds
# nothing and overwrites nothing.
SETTING := $(if $(filter 1,$(MNIST)),/mnist,$(if $(RAW),/raw/$(subst $(space),+,$(strip $(ORIGINS)))))
PROC    ?= data/processed$(SETTING)
REPORTS ?= reports$(SETTING)
VARIANTS := $(PROC) $(if $(filter 1,$(ABLATE)),$(PROC)/plain)
MODEL    := $(REPORTS)/model_$(TRAIN_SIZE).npz

# ---- quiet recipes: `step` prints "  build   data/processed/parts/hand.csv" and $(Q) hides the
# command; with V=1, and under `make -n` (which prints commands instead of running them), the
# commands themselves.
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
ifeq ($(V)$(DRY_RUN),0)
  Q    := @
  step  = @printf '  %-8s%s\n' '$(1)' '$(2)'
else
  Q    :=
  step  =
endif

# ---- what a build reads: the image suffixes `digitprep build` accepts (digitprep/sources.py
# IMAGE_SUFFIXES, matched in any case; tests/test_makefile.py checks each of those, in either case,
# makes a rebuild).
IMAGE_SUFFIXES := .png .jpg .jpeg .bmp .tif .tiff .gif .webp .pgm .ppm .pnm
SOURCE_TEST    := \( -type d $(foreach s,$(IMAGE_SUFFIXES),-o -iname '*$(s)') \)
# FORCE when something under folder $(2) is newer than stamp $(1): an image (replaced or touched) or
# a folder (its time changes when a file is added, removed or renamed). Asking find, rather than
# listing every image as a prerequisite, keeps names with spaces, '#', ':' or '$' out of make's
# parser, and follows links to folders as build does.
newer_sources = $(if $(wildcard $(1)),$(if $(shell find -L $(2) -newer $(1) $(SOURCE_TEST) -print 2>/dev/null | head -n 1),FORCE))

# ---- options files. $(1) the file, $(2) a function giving its text, $(3) that function's argument.
# The file depends on FORCE only when its recorded text differs from the text now; its recipe
# rewrites it, so whatever depends on it is rebuilt. Same text: no rule to run, nothing rebuilt.
same_text = $(and $(findstring $(1),$(2)),$(findstring $(2),$(1)))
quoted    = '$(subst ','\'',$(1))'
define OPTIONS
$(1): $$(if $$(call same_text,$$(strip $$(shell cat $(1) 2>/dev/null)),$$(strip $$(call $(2),$(3)))),,FORCE)
	$$(Q)mkdir -p $$(@D) && printf '%s\n' $$(call quoted,$$(strip $$(call $(2),$(3)))) > $$@
endef
FORCE:

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
tag_filter = $(if $(filter $(1),$(call words_of,$(DRAWING_SIZES))),--drawing-size $(1) --drawing-size none)
normalize_flags = $(if $(filter $(PROC)/plain,$(1)),--no-deskew --no-center,$(NORMALIZED))

# The options of each step of variant $(1). A person's folders are recorded by path: two sets of
# folders with the same names share a data folder, and switching between them rebuilds.
build_options   = sizes=$(BUILD_SIZES) $(call normalize_flags,$(1)) origins=$(ORIGINS) \
                  $(if $(filter-out 1,$(MNIST)),$(if $(RAW),folders=$(RAW)))
split_options   = test=$(TEST_SHARE) seed=$(SEED)
augment_options = copies=$(AUGMENT) seed=$(SEED) $(AUGMENT_FLAGS)

# $(1) variant folder, $(2) origin. Build names its outputs OUT_SIZE.csv when given several sizes and
# OUT.csv when given one: one size is asked for by its own name.
build_out = $(1)/parts/$(2)$(if $(word 2,$(BUILD_SIZES)),,_$(BUILD_SIZES)).csv
define BUILD_ORIGIN
$(1)/parts/$(2).built: $(ready_$(2)) $(call newer_sources,$(1)/parts/$(2).built,$(dir_$(2))) \
    $(1)/parts/build.opts | $(STAMP)
	$$(call step,build,$(call build_out,$(1),$(2)))
	$$(Q)$(BIN)/digitprep build $(dir_$(2)) --labels $(labels_$(2)) --origin $(2) --sizes $(call commas_of,$(BUILD_SIZES)) \
	    $(call normalize_flags,$(1)) --jobs $(JOBS) --quiet --out $(call build_out,$(1),$(2))
	$$(Q)touch $$@
endef

# $(1) variant folder, $(2) origin, $(3) size
define SPLIT_ORIGIN
$(1)/parts/$(2)_$(3).split: $(1)/parts/$(2).built $(1)/parts/split.opts | $(STAMP)
	$$(call step,split,$(1)/parts/$(2)_$(3).csv)
	$$(Q)$(BIN)/digitprep split $(1)/parts/$(2)_$(3).csv --test-share $(TEST_SHARE) --seed $(SEED) --by path \
	    --train-out $(1)/parts/$(2)_$(3)_train.csv --test-out $(1)/parts/$(2)_$(3)_test.csv
	$$(Q)touch $$@
endef

# $(1) variant folder, $(2) set name (a size, "all_SIZE" or "mixed"), $(3) its image size, $(4) row filter
define TEST_SET
$(1)/test_$(2).csv: $(call part_stamps,$(1),$(3)) | $(STAMP)
	$$(call step,mix,$$@)
	$$(Q)$(BIN)/digitprep mix $(call test_parts,$(1),$(3)) $(4) --out $$@
endef

# The training side, written by the mix itself (AUGMENT=0) ...
define TRAIN_SET
$(1)/train_$(2).csv: $(call part_stamps,$(1),$(3)) $(1)/parts/augment.opts | $(STAMP)
	$$(call step,mix,$$@)
	$$(Q)$(BIN)/digitprep mix $(call train_parts,$(1),$(3)) $(4) --out $$@
endef

# ... or mixed into parts/ and augmented from there: after the split, so only training rows get copies.
define AUGMENTED_TRAIN_SET
$(1)/parts/train_$(2).csv: $(call part_stamps,$(1),$(3)) | $(STAMP)
	$$(call step,mix,$$@)
	$$(Q)$(BIN)/digitprep mix $(call train_parts,$(1),$(3)) $(4) --out $$@
$(1)/train_$(2).csv: $(1)/parts/train_$(2).csv $(1)/parts/augment.opts | $(STAMP)
	$$(call step,augment,$$@)
	$$(Q)$(BIN)/digitprep augment --copies $(AUGMENT) --seed $(SEED) --jobs $(JOBS) $(AUGMENT_FLAGS) $$< --out $$@
endef
TRAINING_RULES := $(if $(filter-out 0,$(AUGMENT)),AUGMENTED_TRAIN_SET,TRAIN_SET)

# $(1) variant folder
define VARIANT
$(eval $(call OPTIONS,$(1)/parts/build.opts,build_options,$(1)))
$(eval $(call OPTIONS,$(1)/parts/split.opts,split_options,$(1)))
$(eval $(call OPTIONS,$(1)/parts/augment.opts,augment_options,$(1)))
$(foreach o,$(ORIGINS),$(eval $(call BUILD_ORIGIN,$(1),$(o))))
$(if $(filter 1,$(MNIST)),,$(foreach o,$(ORIGINS),$(foreach s,$(BUILD_SIZES),$(eval $(call SPLIT_ORIGIN,$(1),$(o),$(s))))))
$(foreach s,$(SIZE_LIST),$(eval $(call TEST_SET,$(1),$(s),$(s),$(call tag_filter,$(s))))$(eval $(call TEST_SET,$(1),all_$(s),$(s),)))
$(foreach s,$(SIZE_LIST),$(eval $(call $(TRAINING_RULES),$(1),$(s),$(s),$(call tag_filter,$(s)))))
$(eval $(call TEST_SET,$(1),mixed,$(MIXED_SIZE),))
$(eval $(call $(TRAINING_RULES),$(1),mixed,$(MIXED_SIZE),))
endef

# MNIST has one origin and no drawing sizes: its mixed set would be train_MIXED_SIZE again.
MIXED := $(if $(filter 1,$(MNIST)),,mixed)
dataset_files = $(foreach s,$(SIZE_LIST),$(1)/train_$(s).csv $(1)/test_$(s).csv $(1)/test_all_$(s).csv) \
                $(foreach m,$(MIXED),$(1)/train_$(m).csv $(1)/test_$(m).csv)

# What digittrain is given; recorded in $(MODEL:.npz=.opts) and $(REPORTS)/compare.opts.
train_args   = --size $(TRAIN_SIZE) --train $(PROC)/train_$(TRAIN_SIZE).csv --test $(PROC)/test_$(TRAIN_SIZE).csv \
               $(MODEL_FLAGS) --report 10 --save $(MODEL) --plot $(REPORTS)/curves_$(TRAIN_SIZE).png \
               --results $(REPORTS)/results.csv $(TRAIN_FLAGS)
compare_args = --data $(PROC) --sizes $(call commas_of,$(SIZE_LIST)) $(if $(MIXED),,--no-mixed) \
               $(if $(filter 1,$(ABLATE)),--ablate $(PROC)/plain) $(MODEL_FLAGS) --out-dir $(REPORTS) $(COMPARE_FLAGS)

# Goals that need no data rules: their parse stays quick and asks nothing of the file system.
NO_DATA_GOALS := help venv test lint bench data form mnist clean distclean
ifneq ($(filter-out $(NO_DATA_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
$(foreach v,$(VARIANTS),$(eval $(call VARIANT,$(v))))
$(eval $(call OPTIONS,$(MODEL:.npz=.opts),train_args,))
$(eval $(call OPTIONS,$(REPORTS)/compare.opts,compare_args,))
endif
form_args = --out $(FORM) $(FORM_FLAGS)
$(eval $(call OPTIONS,$(basename $(FORM)).opts,form_args,))

.PHONY: help all venv data dataset train compare form mnist test bench lint clean distclean
.DELETE_ON_ERROR:

define HELP
make TARGET [VARIABLE=value ...]   (the values in force are shown in [ ])

Targets:
  help            this list (what a bare `make` prints)
  all             set up .venv, make the embedded data, build the data sets, train, compare
  data            the embedded raw data only: data/raw/fonts, data/raw/sklearn
  dataset         the data sets: train/test per size, test_all per size, the mixed set [$(PROC)]
  train           digittrain on train_TRAIN_SIZE: model, learning curves, a row of results.csv [$(MODEL)]
  compare         digittrain compare over SIZES and the mixed set, with and without deskew/centre [$(REPORTS)/compare.md]
  form            a blank form to print and fill in by hand (digitprep form), and its layout JSON [$(FORM)]
  mnist           download MNIST (MD5-checked) and write its PNG trees under $(MNIST_DIR)
  test            the test suite (tests needing ../shared/data skip without it)
  bench           speed and memory benchmarks (bench/)
  lint            ruff
  venv            create .venv and install the project into it (every target that needs it does this itself)
  clean           remove this setting's data sets and the reports
  distclean       clean, and remove .venv and the generated raw data

Data (dataset, train, compare):
  RAW             your folders instead of the embedded data, one origin each, named after the folder [$(RAW)]
  MNIST           1: MNIST (after `make mnist`) with its own split [$(MNIST)]
  PROC            where the data sets go: own folders for RAW (data/processed/raw/NAME+...) and MNIST [$(PROC)]
  REPORTS         where models and reports go, likewise [$(REPORTS)]
  SIZES           image sizes of the data sets, comma-separated (SIZES=8,20,28) [$(SIZES)]
  MIXED_SIZE      image size of the mixed set (every row) [$(MIXED_SIZE)]
  DRAWING_SIZES   drawing-size tags in file names, comma-separated: the set of such a size keeps only rows drawn at it
                  (empty with RAW: every row in every set) [$(DRAWING_SIZES)]
  DESKEW          1: deskew [$(DESKEW)]
  CENTER          1: centre by mass [$(CENTER)]
  BOX             with CENTER=1: share of the side the digit's longer edge is fitted into (empty: 20/28) [$(BOX)]
  TEST_SHARE      share of each origin's images on the test side [$(TEST_SHARE)]
  SEED            seed of the split and the augmentation [$(SEED)]
  AUGMENT         augmented copies of each training row [$(AUGMENT)]
  AUGMENT_FLAGS   further `digitprep augment` flags [$(AUGMENT_FLAGS)]
  ABLATE          1: also build the sets without deskew/centre (PROC/plain) for compare [$(ABLATE)]
  JOBS            worker processes of build and augment (0: all cores) [$(JOBS)]
  MNIST_MIRROR    a mirror URL for `make mnist` [$(MNIST_MIRROR)]

Training (train, compare):
  TRAIN_SIZE      image size `make train` trains on [$(TRAIN_SIZE)]
  HIDDEN          hidden layer sizes, comma-separated [$(HIDDEN)]
  LR              learning rate [$(LR)]
  EPOCHS          epochs [$(EPOCHS)]
  BATCH           batch size [$(BATCH)]
  TRAIN_FLAGS     further digittrain flags for train, appended to the default set: a flag given here wins [$(TRAIN_FLAGS)]
  COMPARE_FLAGS   further digittrain compare flags, appended likewise [$(COMPARE_FLAGS)]
                  the default set now: $(strip $(MODEL_FLAGS))

Form (form):
  FORM            the form file, .pdf or .png; its layout goes beside it as .json [$(FORM)]
  FORM_FLAGS      further `digitprep form` flags, e.g. FORM_FLAGS="--paper letter --rows 12 --cols 6" [$(FORM_FLAGS)]

Other:
  V               1: print the full commands instead of one line per step [$(V)]
  PYTHON          the Python that creates .venv [$(PYTHON)]
endef

help:
	@: $(info $(HELP))

all: train compare
	@echo "Report: $(REPORTS)/compare.md (table), $(REPORTS)/compare.png (chart); model: $(MODEL), curves_$(TRAIN_SIZE).png; every run: $(REPORTS)/results.csv"

venv: $(STAMP)

# pip's notices (a package index's warnings, setuptools' editable-install note) go to a log, shown
# only when the install fails; V=1 shows them as they come.
PIP_QUIET = $(if $(filter 1,$(V)),,>$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; })

$(STAMP): pyproject.toml
	$(call step,venv,$(VENV))
	$(Q)test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(Q)$(BIN)/python -m pip install --quiet --upgrade pip $(PIP_QUIET)
	$(Q)$(BIN)/python -m pip install --quiet -e '.[dev]' $(PIP_QUIET)
	$(Q)touch $@

# ---- embedded default data: fonts rendered at both drawing sizes, scikit-learn's handwritten 8x8 digits
data: data/raw/fonts/.done data/raw/sklearn/.done

data/raw/fonts/.done: | $(STAMP)
	$(call step,render,$(@D))
	$(Q)$(BIN)/digitprep render --out-dir $(@D) --quiet
	$(Q)touch $@

data/raw/sklearn/.done: | $(STAMP)
	$(call step,digits,$(@D))
	$(Q)$(BIN)/digitprep digits --out-dir $(@D)
	$(Q)touch $@

# ---- MNIST: the four IDX files from the public mirror (MD5-checked), then PNG trees `build` reads:
# $(MNIST_DIR)/training/<digit>/<index>.png and $(MNIST_DIR)/testing/... A rerun with everything in
# place does nothing. One pattern rule with several targets (% matches the ".") is make's way of
# saying that one run of the recipe makes all four files.
mnist: $(MNIST_DIR)/training/.done $(MNIST_DIR)/testing/.done

$(MNIST_DIR)/train-images-idx3-ubyte%gz $(MNIST_DIR)/train-labels-idx1-ubyte%gz \
$(MNIST_DIR)/t10k-images-idx3-ubyte%gz $(MNIST_DIR)/t10k-labels-idx1-ubyte%gz: | $(STAMP)
	$(call step,fetch,$(MNIST_DIR))
	$(Q)$(BIN)/digitprep fetch-mnist $(MNIST_DIR) $(foreach m,$(MNIST_MIRROR),--mirror $(m))

$(MNIST_DIR)/training/.done: $(MNIST_DIR)/train-images-idx3-ubyte.gz $(MNIST_DIR)/train-labels-idx1-ubyte.gz
	$(call step,mnist,$(@D))
	$(Q)$(BIN)/digitprep mnist $< --out-dir $(@D)
	$(Q)touch $@

$(MNIST_DIR)/testing/.done: $(MNIST_DIR)/t10k-images-idx3-ubyte.gz $(MNIST_DIR)/t10k-labels-idx1-ubyte.gz
	$(call step,mnist,$(@D))
	$(Q)$(BIN)/digitprep mnist $< --out-dir $(@D)
	$(Q)touch $@

# ---- data sets, training, comparison
dataset: $(call dataset_files,$(PROC))

$(MODEL): $(PROC)/train_$(TRAIN_SIZE).csv $(PROC)/test_$(TRAIN_SIZE).csv $(MODEL:.npz=.opts) | $(STAMP)
	$(call step,train,$@)
	$(Q)$(BIN)/digittrain $(strip $(train_args))

train: $(MODEL)

$(REPORTS)/compare.md: $(foreach v,$(VARIANTS),$(call dataset_files,$(v))) $(REPORTS)/compare.opts | $(STAMP)
	$(call step,compare,$@)
	$(Q)$(BIN)/digittrain compare $(strip $(compare_args))

compare: $(REPORTS)/compare.md

$(FORM): $(basename $(FORM)).opts | $(STAMP)
	$(call step,form,$@)
	$(Q)$(BIN)/digitprep form $(strip $(form_args))

form: $(FORM)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/prep.py
	$(BIN)/python bench/mnist_csv.py
	$(BIN)/python bench/augment.py
	$(BIN)/python bench/form_photos.py

clean:
	rm -rf $(PROC)/parts $(PROC)/plain $(PROC)/*.csv $(PROC)/*.json $(REPORTS)

distclean: clean
	rm -rf $(VENV) data/cache data/raw/sklearn data/raw/fonts data/raw/mnist
