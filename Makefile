# clusternb: `make lab` opens JupyterLab with clusternb; `make test` runs the whole suite.
# Everything is installed into .venv by this file; Debian packages by scripts/system-deps.sh.

VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
PORT   ?= 8888
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: lab test env test-env bench lint clean help

help:
	@echo "make lab    set everything up and open JupyterLab on notebooks/quickstart.ipynb"
	@echo "make test   set everything up (redis-server, chromium included) and run the whole suite"
	@echo "make bench  run the benchmarks in benchmarks/"
	@echo "make lint   ruff and mypy"

# A stdlib venv with uv inside it: needs nothing but python3, and uv installs the stack in seconds.
$(UV):
	scripts/system-deps.sh lab
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv

# The stamp files re-run the install when pyproject.toml changes.
$(VENV)/.lab-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet -p $(PY) -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet -p $(PY) -e '.[test,bench]'
	@touch $@ $(VENV)/.lab-installed

env: $(VENV)/.lab-installed

test-env: $(VENV)/.test-installed
	scripts/system-deps.sh test

lab: env
	$(VENV)/bin/jupyter lab --config=jupyter_server_config.py --port=$(PORT) $(LAB_ARGS) notebooks/quickstart.ipynb

test: test-env
	$(PY) -m pytest $(PYTEST_ARGS)

bench: test-env
	scripts/system-deps.sh bench
	$(PY) benchmarks/run_all.py

lint: test-env
	$(VENV)/bin/ruff check clusternb tests benchmarks
	$(VENV)/bin/ruff format --check clusternb tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
