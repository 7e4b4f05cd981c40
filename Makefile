# medseg_kit — every target makes the virtual environment in .venv when it is missing and
# installs what it needs (idempotently: a stamp file remembers what was installed).
#   make demo    synthetic polyps, 3 sites, centralized vs local vs SplitFed, table + figures
#   make test    lint, notebook hygiene, unit tests, notebooks (papermill + nbval)
#   make lab     JupyterLab on notebooks/
#   make bench   benchmarks (timings are reported, never asserted)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned here: its CPU build lies on the build machines' disk and installs in
# seconds, where an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test lint lab bench clean env

env: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[notebooks,test]" "$(TORCH)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medseg_kit)" >/dev/null
	touch $@

demo: $(STAMP)
	$(BIN)/medseg-kit demo --out outputs

lint: $(STAMP)
	$(BIN)/ruff check medseg_kit tests data_scripts bench notebooks

test: lint
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf outputs .pytest_cache .ruff_cache
