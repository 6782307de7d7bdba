# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (Python >= 3.10) and installs mixrep into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	PYTHON=$(BIN)/python bash scripts/demo.sh

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs lightning_logs .pytest_cache
