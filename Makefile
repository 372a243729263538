# checkpoint_magic developer commands. Only `python3` (3.10+) is needed on the machine:
# every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-extras bench stress lint mutate clean
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

## test: the layer contract, then the whole default test suite (stress runs and benchmarks are separate)
test: $(VENV)/.test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

## test-extras: the tests of optional integrations that need large packages (PyTorch, CPU build)
test-extras: $(VENV)/.test
	$(PIP) install torch
	$(PY) -m pytest tests/savers -k torch -p no:cacheprovider

## bench: ratios against joblib, marimo-style baselines and raw numpy, measured in one run
##        (BENCH_ARGS="--quick" or "--only NAME" are passed to bench_core and bench_scale)
bench: $(VENV)/.bench
	$(PY) benchmarks/bench_core.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_scale.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_pipelines.py

## stress: the long fault-injection and concurrency runs
stress: $(VENV)/.test
	$(PY) -m pytest tests/stress -p no:cacheprovider

## lint: ruff (lint + format check), mypy and the layer contract
lint: $(VENV)/.lint
	$(VENV)/bin/ruff check checkpoint_magic tests benchmarks notebooks
	$(VENV)/bin/ruff format --check checkpoint_magic
	$(VENV)/bin/mypy checkpoint_magic
	$(VENV)/bin/lint-imports

## mutate: mutation testing of the fingerprint, store and front-end modules (slow; not in `make test`)
mutate: $(VENV)/.test
	$(PIP) install 'mutmut>=3.2,<4'
	$(PY) benchmarks/mutate.py

clean:
	rm -rf $(VENV) .Lutil-checkpoint build *.egg-info .pytest_cache
