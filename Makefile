# One-command set-up, demo and tests. Everything runs inside .venv in the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0 installs from a local CPU wheel on the project's machines (seconds); elsewhere pip
# fetches the matching build for the machine. The package itself accepts any torch >= 2.4.
TORCH_VERSION ?= 2.13.0
EXAMPLE_DIR := data/example
DEMO_OUT := out/demo
# The demo keeps its model in a library of its own (not the user's), under a name unique to this run.
DEMO_LIBRARY := $(DEMO_OUT)/library
DEMO_HISTORY := $(DEMO_OUT)/history
DEMO_RUN := demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup browser demo test clean

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
	$(BIN)/distill train $(EXAMPLE_DIR) --preset tiny --yes --name $(DEMO_RUN) --library $(DEMO_LIBRARY)
	$(BIN)/distill model info $(DEMO_RUN) --library $(DEMO_LIBRARY)
	$(BIN)/distill generate $(DEMO_RUN) --library $(DEMO_LIBRARY) -n 3 -d 4 --seed 1 -o $(DEMO_OUT)/generated
	$(BIN)/distill generate $(DEMO_RUN) --library $(DEMO_LIBRARY) -d 20 --seed 7 --evolution 0.8 \
		--slider 1=6 --format flac --bit-depth 24 --title "distill demo" -o $(DEMO_OUT)/generated
	$(BIN)/distill generate $(DEMO_RUN) --library $(DEMO_LIBRARY) -d 8 --seed 3 --spatial stereo --width 0.8 \
		--loudness -16 --history --history-dir $(DEMO_HISTORY) -o $(DEMO_OUT)/generated
	$(BIN)/distill generate $(DEMO_RUN) --library $(DEMO_LIBRARY) -d 8 --seed 3 --spatial binaural --azimuth 60 \
		--depth 0.4 --loudness -16 --history --history-dir $(DEMO_HISTORY) -o $(DEMO_OUT)/generated
	$(BIN)/distill history compare 2 1 --history-dir $(DEMO_HISTORY)
	$(BIN)/distill history keep 1 "binaural at 60" --history-dir $(DEMO_HISTORY) --library $(DEMO_LIBRARY)
	$(BIN)/distill preset list $(DEMO_RUN) --library $(DEMO_LIBRARY)
	$(BIN)/python serve/example_client.py --start --library $(DEMO_LIBRARY) --model $(DEMO_RUN) -o $(DEMO_OUT)/served
	$(BIN)/distill sweep $(EXAMPLE_DIR) --preset tiny --trials 3 --epochs 2 --name sweep-$(DEMO_RUN) \
		--library $(DEMO_LIBRARY) --yes

# The UI tests drive a real Chromium: Debian's package (root, or sudo), installed once.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

test: setup browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data out .pytest_cache
