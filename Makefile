# One-command set-up, demo and tests. Everything runs inside .venv in the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0 installs from a local CPU wheel on the project's machines (seconds); elsewhere pip
# fetches the matching build for the machine. The package itself accepts any torch >= 2.4.
TORCH_VERSION ?= 2.13.0
EXAMPLE_DIR := data/example
DEMO_OUT := out/demo

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/distill example-data $(EXAMPLE_DIR)
	$(BIN)/distill scan $(EXAMPLE_DIR)
	$(BIN)/distill roundtrip $(EXAMPLE_DIR) --out $(DEMO_OUT)/roundtrip
	$(BIN)/python benchmarks/roundtrip.py $(EXAMPLE_DIR)
	$(BIN)/distill prepare $(EXAMPLE_DIR) --expansion 1 --yes
	$(BIN)/distill prepare $(EXAMPLE_DIR) --expansion 1 --yes
	$(BIN)/distill train $(EXAMPLE_DIR) --preset tiny --yes

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data out .pytest_cache
