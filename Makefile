# Two commands do everything on a fresh machine with Python 3.11+:  make demo  |  make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test demo docs lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m orchestrator demo

# docs/config.md and the README's command reference are generated; tests/test_docs.py checks both.
docs: $(STAMP)
	$(PY) -m orchestrator.docs_gen.config_reference --write
	$(PY) -m orchestrator.docs_gen.cli_reference --write

lint: $(STAMP)
	$(VENV)/bin/ruff check orchestrator trainables search_spaces tests benchmarks

clean:
	rm -rf runs demo_runs .pytest_cache
