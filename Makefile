# checkpoint_magic developer commands. Only `python3` (3.10+) is needed on the machine:
# every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-extras test-oldest bench stress lint mutate clean
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
	-@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
	  || echo "(chromium not installed: the store report's browser test will be skipped)"
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

## test-extras: the tests of optional integrations that need large packages (PyTorch, CPU build)
test-extras: $(VENV)/.test
	$(PIP) install torch
	$(PY) -m pytest tests/savers -k torch -p no:cacheprovider

# The declared minimum versions (pyproject.toml), installed exactly by `make test-oldest`.
OLDEST      ?= .venv-oldest
OLDEST_PINS := numpy==1.24.4 pandas==2.0.3 pyarrow==14.0.2 xxhash==3.0.0 cloudpickle==2.2.0 \
               scikit-learn==1.6.0 h5py==3.8.0 tqdm==4.64.0 ipython==8.0.0 \
               dask[distributed]==2023.1.0 pytest pytest-timeout

$(OLDEST)/.created: Makefile
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip --disable-pip-version-check -q install $(OLDEST_PINS)
	$(OLDEST)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	@touch $@

## test-oldest: the scikit-learn layer's tests against the minimum versions of the dependencies
test-oldest: $(OLDEST)/.created
	$(OLDEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(numpy|pandas|scikit-learn|h5py|dask|tqdm) '
	$(OLDEST)/bin/python -m pytest tests/pipelines checkpoint_magic/pipelines -q -p no:cacheprovider

## bench: ratios against joblib, marimo-style baselines and raw numpy, measured in one run
##        (BENCH_ARGS="--quick" or "--only NAME" are passed to bench_core and bench_scale)
bench: $(VENV)/.bench
	$(PY) benchmarks/bench_core.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_scale.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_pipelines.py
	$(PY) benchmarks/bench_s3.py
	$(PY) benchmarks/bench_signed_read.py
	$(PY) benchmarks/readme_table.py

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
	rm -rf $(VENV) $(OLDEST) .Lutil-checkpoint build *.egg-info .pytest_cache
