# paperclub - the user's front door. Two commands on a fresh machine: `make reproduce` and `make test`.
# Everything runs inside .venv (created on first use). SCALE=gpu selects the full configs.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.paperclub-installed
SCALE ?= cpu
export SCALE

.DEFAULT_GOAL := help
REPRODUCE_TARGETS :=
FIG_TARGETS :=
BENCH_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: help install test lint reproduce report corpus wheelhouse install-offline clean-outputs

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-28s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml tools/install.sh tools/apt-packages.txt
	PYTHON=$(PYTHON) VENV=$(VENV) bash tools/install.sh
	@touch $@

install: $(STAMP)  ## create .venv, install CPU torch (no GPU) + paperclub[all,dev] + Debian data packages

# pytest-xdist workers for `make test`; one test file per worker (--dist loadfile), so a module's fixtures are built
# once. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: $(STAMP)  ## run the test suite (CPU; GPU tests are skipped without CUDA; TEST_WORKERS=2 processes)
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check .

corpus: $(STAMP)  ## build the offline English text corpus + tokenizer (resumable)
	$(PY) -m common.data.text build

reproduce: $(STAMP) corpus $(REPRODUCE_TARGETS)  ## every package's headline experiment at SCALE (default cpu), then the report
	$(MAKE) report

report: $(STAMP)  ## regenerate experiments/REPORT.md from results JSON
	$(PY) -m common.report

wheelhouse:  ## download wheels for an air-gapped GPU node (Python 3.12, manylinux x86_64)
	bash tools/wheelhouse.sh

install-offline:  ## on the air-gapped node: install from wheelhouse/ with --no-index
	bash tools/install_offline.sh

clean-outputs:  ## remove Hydra outputs (outputs/, multirun/)
	rm -rf outputs multirun
