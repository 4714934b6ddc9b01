# Every thing a person does with the course has a target here.
# The environment lives in .venv, created on first use from requirements.txt.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

SUBMISSIONS ?= submissions
OUT         ?= out/graded
JOBS        ?= 2

.PHONY: help install sandbox student release validate test test-fast lint format demo grade check bench bench-notebooks bench-vectorised bench-grading clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything

sandbox:  ## install bubblewrap (the grader's sandbox) and chromium (feedback page tests); root and apt
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null)) \
	      && echo "installed bubblewrap"; \
	  else echo "WARNING: bubblewrap missing; install it (e.g. apt-get install bubblewrap) to sandbox grading"; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	      && echo "installed chromium (the feedback pages are checked in it)"; \
	  else echo "NOTE: chromium missing: the browser test of the feedback pages will be skipped"; fi; }

student release: $(STAMP)  ## regenerate notebooks/ from solutions/ (nbgrader generate_assignment)
	$(PY) -m autograder release

validate: $(STAMP)  ## nbgrader validate: solutions pass, student versions fail every test
	$(PY) -m autograder validate

test: $(STAMP) sandbox  ## run the whole test suite
	$(PY) -m pytest -q

test-fast: $(STAMP)  ## the tests that start no kernel
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)  ## ruff format
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: $(STAMP) sandbox  ## release, fabricate a class, grade it in the sandbox, print the table
	$(PY) -m autograder demo --jobs $(JOBS)

grade: $(STAMP) sandbox  ## grade SUBMISSIONS (folder or zip) into OUT
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) --jobs $(JOBS)

check: $(STAMP)  ## a student's self-check: make check NOTEBOOK=notebooks/04_sparse_autoencoder.ipynb
	$(PY) -m autograder check $(NOTEBOOK)

bench: $(STAMP) sandbox  ## everything measured: notebooks (fast+full), grading vs nbgrader, vectorised exercises; bench/report.md
	$(PY) benchmarks/bench_sparsity.py --results bench/results.json || true
	$(PY) benchmarks/run_notebooks.py
	$(PY) benchmarks/bench_grading.py || true
	$(PY) benchmarks/report.py

bench-vectorised: $(STAMP)  ## vectorised exercises >= 20x a per-sample loop (exit 1 otherwise)
	$(PY) benchmarks/bench_sparsity.py

bench-grading: $(STAMP) sandbox  ## grading throughput: plain nbgrader vs this grader, one class
	$(PY) benchmarks/bench_grading.py

bench-notebooks: $(STAMP)  ## run every notebook fast and full; bench/results.json and the README table
	$(PY) benchmarks/run_notebooks.py $(if $(ONLY),--only $(ONLY)) $(if $(MODES),--modes $(MODES))

clean:  ## remove generated files (keeps .venv)
	rm -rf out autograder/course checkpoints .pytest_cache
