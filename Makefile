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
# Bytecode is compiled here, once: where a process cannot write .pyc files (PYTHONDONTWRITEBYTECODE, a read-only
# or shared venv) every `clusternb` command would otherwise compile pandas and the rest from source at each start,
# about 2.5x slower (benchmarks/bench_cli_startup.py). uv compiles what it installs; compileall does this
# checkout's own package, which an editable install leaves as sources.
$(VENV)/.lab-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode -p $(PY) -e .
	$(PY) -m compileall -q clusternb
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode -p $(PY) -e '.[test,bench]'
	$(PY) -m compileall -q clusternb
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
