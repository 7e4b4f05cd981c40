# medseg_kit — every target makes the virtual environment in .venv when it is missing and
# installs what it needs (idempotently: a stamp file remembers what was installed).
#   make demo    synthetic polyps, 3 sites, centralized vs local vs SplitFed over 3 seeds
#   make course  every notebook at its defaults (papermill), claims checked; fills the
#                teaching cache first, as Binder's postBuild does; report in outputs/notebooks/
#   make course-cold   the same, each notebook with an empty cache (what Binder would cost
#                without postBuild), beside the warm run in the report
#   make test    lint, browser dependencies, then on the two cores at once: unit tests and
#                notebooks with small parameters (pytest) | make course; fails if either fails
#   make lab     JupyterLab on notebooks/
#   make bench   the kit against a plain loop, SplitFed against centralized (BENCHMARKS.md);
#                timings are reported, never asserted; make bench-all adds bench/*.py

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned here: its CPU build lies on the build machines' disk and installs in
# seconds, where an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test unit course course-cold browser-deps lint lab bench bench-all clean env flower-demo

env: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[notebooks,test,flower]" "$(TORCH)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medseg_kit)" >/dev/null
	touch $@

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/medseg-kit demo --out outputs

# ruff, then the layer contract in pyproject.toml (no upward import, no circle)
lint: $(STAMP)
	$(BIN)/ruff check medseg_kit tests data_scripts bench notebooks
	$(BIN)/lint-imports --no-cache

# pytest and the course run side by side, one core each; make waits for both, prints each
# one's output whole when it ends (--output-sync) and fails when either failed.
test: lint browser-deps
	$(MAKE) --no-print-directory -j2 --output-sync=target unit course

unit: $(STAMP)
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests

course: $(STAMP)
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python tests/run_course.py --cache warm

course-cold: $(STAMP)
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python tests/run_course.py --cache both

# Debian's Chromium and Playwright for the real-browser test (idempotent; helper script)
browser-deps: $(STAMP)
	bash .ci/browser-deps

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# the issue-11 table on this machine (one thread: the cost per core; BENCHMARKS.md)
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/medseg-kit bench --models cpu --repeats 5 --profile --out outputs/bench

# and the older single-purpose benchmarks (codecs, step time per model, teaching targets)
bench-all: bench
	@for f in bench/*.py; do echo "== $$f"; OMP_NUM_THREADS=1 $(BIN)/python $$f || exit 1; done

# a SuperLink and 3 SuperNodes on loopback (INSECURE, this machine only), 2 rounds of
# sflv2 through them beside the simulation; stops exactly the processes it started
flower-demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/medseg-kit flower demo --out outputs/flower

clean:
	rm -rf outputs .pytest_cache .ruff_cache
