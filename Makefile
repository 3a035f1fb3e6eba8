# The README's two commands; each creates or updates the virtual environment .venv first.
#   make bench   the main job: sweep the built-in MLP headless, recommend, write results/mlp.yaml
#                (a user's own results; the shipped profiles in profiles/ stay as shipped)
#   make test    ruff, mypy and the test suite (.ci/run runs exactly this); as root it also installs
#                Debian's chromium for the report's browser tests when it is missing
# Needs python3 >= 3.10 and make. .venv is (re)installed when pyproject.toml, this file or the test
# extras change; a stamp file in .venv records each install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Extras of the test environment besides [dev], comma-separated (e.g. onnx,torch,sklearn,ray).
# Not bench-models: only tests/benchmarks/vs_default.py's real models need it, and no test does
# (its smoke test runs the built-in mlp); install it by hand for that benchmark.
TEST_EXTRAS ?= onnx,torch,sklearn,test-models,test-k8s,ray,serve,metrics
# Requirements installed before those extras, so pip does not choose them itself. torch needs its
# pinned CPU wheel (torch==2.13.0) first: an unpinned torch pulls a CUDA build of several GB.
TEST_PREINSTALL ?= torch==2.13.0

BENCH_ARGS ?= --model builtin:mlp --out results/mlp.yaml --results results/mlp.jsonl
PYTEST_ARGS ?=

comma := ,
DEV_STAMP := $(VENV)/.installed-dev
TEST_STAMP := $(VENV)/.installed-test
TEST_WANTED := $(VENV)/.wanted-test
TEST_SPEC := $(strip $(TEST_PREINSTALL)) [dev$(if $(strip $(TEST_EXTRAS)),$(comma)$(strip $(TEST_EXTRAS)))]

.DEFAULT_GOAL := help
.PHONY: help bench test chromium FORCE

help:
	@echo "make bench   sweep builtin:mlp and write results/mlp.yaml (creates .venv on first use)"
	@echo "make test    ruff, mypy and the test suite (creates .venv on first use)"

bench: $(DEV_STAMP)
	@mkdir -p results
	$(BIN)/tuner bench $(BENCH_ARGS)

test: $(TEST_STAMP) chromium
	$(BIN)/ruff check tuner
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(DEV_STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "tuner needs Python >= 3.10; $(PYTHON) is " + sys.version.split()[0])'
	@test -x $(BIN)/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	@touch $@

# Rewritten only when the wanted test extras differ from the last install's, so that a change to
# TEST_EXTRAS or TEST_PREINSTALL (here or on the command line) reinstalls, and nothing else does.
$(TEST_WANTED): FORCE
	@mkdir -p $(VENV)
	@echo '$(TEST_SPEC)' | cmp -s - $@ || echo '$(TEST_SPEC)' > $@

$(TEST_STAMP): $(DEV_STAMP) $(TEST_WANTED)
ifneq ($(strip $(TEST_PREINSTALL)),)
	$(BIN)/python -m pip install -qq $(TEST_PREINSTALL)
endif
ifneq ($(strip $(TEST_EXTRAS)),)
	$(BIN)/python -m pip install -qq -e '.[dev,$(strip $(TEST_EXTRAS))]'
endif
	@touch $@

# Headless Chromium for the report's browser tests (tests/report): Debian's chromium, installed with apt
# when it is missing and this runs as root (this machine, CI); elsewhere those tests skip, saying why.
# Playwright (in [dev]) drives it; it never downloads a browser of its own.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the report's browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "no chromium, and no apt as root to install it: the report's browser tests will skip"; \
	fi

FORCE:
