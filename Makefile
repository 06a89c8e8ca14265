# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_PRODUCTS ?= 1000

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the main job end to end on the embedded defaults (first run trains the quick
## models, about 35 minutes on 2 cores; later runs reuse the registered ones)
demo: $(STAMP)
	$(VENV)/bin/visearch synth --out $(DEMO_DIR) --products $(DEMO_PRODUCTS) --seed 0 --preview --quiet
	$(VENV)/bin/visearch synth --check $(DEMO_DIR)
	$(VENV)/bin/visearch train detector --data $(DEMO_DIR) --recipe quick --alias champion --if-missing
	$(VENV)/bin/visearch eval detector --data $(DEMO_DIR)
	$(VENV)/bin/visearch eval ocr --data $(DEMO_DIR) --limit 60
	$(VENV)/bin/visearch train backbone --data $(DEMO_DIR) --recipe quick --alias champion --if-missing
	$(VENV)/bin/visearch train head --data $(DEMO_DIR) --recipe quick --alias champion --if-missing
	$(VENV)/bin/visearch eval embeddings --data $(DEMO_DIR)
	$(VENV)/bin/visearch vectorize --data $(DEMO_DIR) --out data/vectors/demo.parquet
	$(VENV)/bin/visearch index build --vectors data/vectors/demo.parquet --catalog $(DEMO_DIR)/products.parquet
	$(VENV)/bin/visearch search $$(ls $(DEMO_DIR)/scenes/images/test/*.jpg | head -n 3) --top 5
	$(VENV)/bin/visearch index stats
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
