# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (Python >= 3.10) and installs mixrep into it on first use, after the system
# packages of the soundfont corpus (FluidSynth, GM soundfonts) and the browser the listening-page test opens
# (Chromium; apt-get as root, else a message). The optional Ray extra (index build --engine ray) is installed
# where Ray has a wheel for this Python; where not, its tests skip, saying so.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps demo transfer test bench clean

install: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/install_system_deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]" || echo "mixrep[ray] could not be installed: the Ray tests will be skipped"
	touch $@

demo: install
	PYTHON=$(BIN)/python bash scripts/demo.sh

transfer: install
	PYTHON=$(BIN)/python bash scripts/transfer_demo.sh

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs lightning_logs .pytest_cache
