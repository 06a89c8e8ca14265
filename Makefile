# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_PRODUCTS ?= 200

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the main job end to end on the embedded defaults
demo: $(STAMP)
	$(VENV)/bin/visearch synth --out $(DEMO_DIR) --products $(DEMO_PRODUCTS) --seed 0 --preview
	$(VENV)/bin/visearch synth --check $(DEMO_DIR)
	$(VENV)/bin/visearch info

## test: the whole suite, outbound network blocked (loopback allowed)
test: $(STAMP)
	$(PY) -m pytest

## bench: timings, each against a baseline measured in the same run
bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check visearch tests bench

clean:
	rm -rf $(VENV) data/demo .pytest_cache
