# checkpoint_magic developer commands. Only `python3` (3.10+) is needed on the machine:
# every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test bench stress lint clean
.DELETE_ON_ERROR:

# The stamp is written only once the environment works, so a failed first attempt is retried.
$(VENV)/.created:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	-$(PIP) install --upgrade pip
	@touch $@

$(VENV)/.demo: pyproject.toml | $(VENV)/.created
	$(PIP) install -e '.[demo]'
	@touch $@

$(VENV)/.test: pyproject.toml | $(VENV)/.created
	$(PIP) install -e '.[test]'
	@touch $@

$(VENV)/.bench: pyproject.toml | $(VENV)/.created
	$(PIP) install -e '.[test,bench]'
	@touch $@

$(VENV)/.lint: pyproject.toml | $(VENV)/.created
	$(PIP) install -e '.[test,lint]'
	@touch $@

## demo: run the quickstart twice in fresh processes and show the second run hitting the cache
demo: $(VENV)/.demo
	$(PY) notebooks/run_demo.py

## test: the whole default test suite (stress runs and benchmarks are separate)
test: $(VENV)/.test
	$(PY) -m pytest

## bench: ratios against joblib, marimo-style baselines and raw numpy, measured in one run
bench: $(VENV)/.bench
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_pipelines.py
	$(PY) benchmarks/bench_s3.py

## stress: the long fault-injection and concurrency runs
stress: $(VENV)/.test
	$(PY) -m pytest tests/stress -p no:cacheprovider

## lint: ruff (lint + format check) and mypy
lint: $(VENV)/.lint
	$(VENV)/bin/ruff check checkpoint_magic tests benchmarks notebooks
	$(VENV)/bin/ruff format --check checkpoint_magic
	$(VENV)/bin/mypy checkpoint_magic

clean:
	rm -rf $(VENV) .Lutil-checkpoint build *.egg-info .pytest_cache
