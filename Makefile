# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_PRODUCTS ?= 1000
BUNDLE ?= models/default.tar.gz
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: install demo demo-ab test bench lint clean models

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the main job end to end on the embedded defaults, ending with the service running:
## prepares what is missing (data, models, index), starts Ray Serve, sends one photo through
## the HTTP API, prints the results and the page's URL, and serves until Ctrl-C
## (DEMO_EXIT=1 returns after the first answer)
demo: $(STAMP) data/index/CURRENT
	VISEARCH_SERVING__CATALOG_DIR=$(DEMO_DIR) $(VENV)/bin/visearch serve --config deployments/local.yaml \
		--try $$(ls $(DEMO_DIR)/scenes/images/test/*.jpg | head -n 1) $(if $(DEMO_EXIT),--exit)

$(DEMO_DIR)/manifest.json: | $(STAMP)
	$(VENV)/bin/visearch synth --out $(DEMO_DIR) --products $(DEMO_PRODUCTS) --seed 0 --preview --quiet

# the shipped default models (registered once; models trained here keep their aliases), or, without the
# bundle, the quick recipes trained on the spot
data/vectors/demo.parquet: $(DEMO_DIR)/manifest.json
	@if [ -f $(BUNDLE) ]; then $(VENV)/bin/visearch models import $(BUNDLE); else \
	  $(VENV)/bin/visearch train detector --data $(DEMO_DIR) --recipe quick --alias champion --if-missing && \
	  $(VENV)/bin/visearch train backbone --data $(DEMO_DIR) --recipe quick --alias champion --if-missing && \
	  $(VENV)/bin/visearch train head --data $(DEMO_DIR) --recipe quick --alias champion --if-missing; fi
	$(VENV)/bin/visearch vectorize --data $(DEMO_DIR) --out $@

data/index/CURRENT: data/vectors/demo.parquet
	$(VENV)/bin/visearch tags generate --data $(DEMO_DIR) --quiet > /dev/null
	$(VENV)/bin/visearch index build --vectors $< --catalog $(DEMO_DIR)/products.parquet
	$(VENV)/bin/visearch calibrate --data $(DEMO_DIR) --quiet --if-missing

## demo-ab: an A/B experiment end to end on this machine: the 128-d against the 256-d online vectors.
## Builds the 256-d index if missing, starts the service, sets the experiment, lets simulated shoppers
## (AB_USERS, 2 photos each) search and act on what they see, prints the report, stops the service.
AB_USERS ?= 300
demo-ab: $(STAMP) data/index/CURRENT
	@test -f data/index-d256/CURRENT || $(VENV)/bin/visearch index build --online-dim 256 \
		--vectors data/vectors/demo.parquet --catalog $(DEMO_DIR)/products.parquet --quiet
	$(VENV)/bin/visearch experiments set head-size --arm d128:50:128 --arm d256:50:256
	@VISEARCH_SERVING__CATALOG_DIR=$(DEMO_DIR) $(VENV)/bin/visearch serve --config deployments/local.yaml > data/demo-ab.log 2>&1 & \
	  pid=$$!; trap "kill $$pid 2>/dev/null; wait $$pid 2>/dev/null" EXIT; \
	  $(VENV)/bin/visearch simulate --data $(DEMO_DIR) --users $(AB_USERS) --experiment head-size --wait 600 && \
	  $(VENV)/bin/visearch experiments report head-size

## models: the default bundle again from scratch, with the full recipes (hours on 2 cores, minutes on a GPU):
## data sets, detector, backbone, head, crop classifier, tag model, refiner, then models/default.tar.gz and its cards
## (docs/models.md).
## Each finished step leaves a stamp in $(MADE): cut short, `make models` goes on from the step it was in.
TRAIN_DIR ?= data/train2k
MADE ?= data/made
V := $(VENV)/bin/visearch
models: $(MADE)/bundle

# the detector and the crop classifier also learn from screenshot-style photos of train products
# (held-out screenshots are the same with or without them)
DETECT_DIR ?= data/detect1k
SHOTS_DIR ?= data/train2k-shots
$(MADE)/detect-data: | $(STAMP)
	test -f $(DETECT_DIR)/manifest.json || $(V) synth --out $(DETECT_DIR) --products 1000 --seed 0 \
		--train-screenshots 1.0 --quiet
	@mkdir -p $(MADE) && touch $@
$(MADE)/train-data: | $(STAMP)
	test -f $(TRAIN_DIR)/manifest.json || $(V) synth --out $(TRAIN_DIR) --products 2000 --seed 1 --quiet
	@mkdir -p $(MADE) && touch $@
$(MADE)/shots-data: | $(STAMP)
	test -f $(SHOTS_DIR)/manifest.json || $(V) synth --out $(SHOTS_DIR) --products 2000 --seed 1 \
		--train-screenshots 1.0 --quiet
	@mkdir -p $(MADE) && touch $@
$(MADE)/detector: $(MADE)/detect-data
	$(V) train detector --data $(DETECT_DIR) --recipe full --alias champion
	@touch $@
$(MADE)/backbone: $(MADE)/train-data
	$(V) train backbone --data $(TRAIN_DIR) --recipe full --alias champion --quiet
	@touch $@
$(MADE)/head: $(MADE)/backbone
	$(V) train head --data $(TRAIN_DIR) --recipe full --alias champion --quiet
	@touch $@
$(MADE)/classifier: $(MADE)/shots-data
	$(V) train classifier --data $(SHOTS_DIR) --recipe full --alias champion --quiet
	@touch $@
$(MADE)/tags: $(MADE)/head
	$(V) train tags --data $(TRAIN_DIR) --recipe full --alias champion --quiet
	@touch $@
# more variant triplets for the refiner: 3,000 products, nine in ten a colour or pattern variant of another
REFINE_DIR ?= data/refine3k
$(MADE)/refine-data: | $(STAMP)
	test -f $(REFINE_DIR)/manifest.json || VISEARCH_SYNTH__VARIANT_FRACTION=0.9 $(V) synth --out $(REFINE_DIR) \
		--products 3000 --scenes 3000 --seed 7 --quiet
	@mkdir -p $(MADE) && touch $@
$(MADE)/refiner: $(MADE)/head $(MADE)/refine-data
	$(V) train refiner --data $(TRAIN_DIR) --also $(REFINE_DIR) --recipe full --alias champion --quiet
	@touch $@
$(MADE)/bundle: $(MADE)/detector $(MADE)/head $(MADE)/classifier $(MADE)/tags $(MADE)/refiner
	$(V) models export models:/visearch-detector@champion models:/visearch-classifier@champion \
		models:/visearch-embedder@champion models:/visearch-embedder-baseline@champion \
		models:/visearch-tagger@champion models:/visearch-refiner@champion \
		--out $(BUNDLE) --label default --note "full recipes, make models"
	@touch $@

## test: the whole suite, outbound network blocked (loopback allowed)
test: $(STAMP) $(CHECKOV_STAMP)
	CHECKOV_BIN=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

## checkov: the Terraform scanner tests/infra runs, in a venv of its own: checkov pins packaging<24,
## networkx<2.7 and one exact boto3, which ray, pytest and scikit-image in .venv cannot share (docs/infra.md)
.PHONY: checkov
checkov: $(CHECKOV_STAMP)
$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo '*' > $(CHECKOV_VENV)/.gitignore
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $@

## bench: timings, each against a baseline measured in the same run
bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check visearch tests bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) data/demo .pytest_cache

## mlflow: the MLflow UI and tracking server over the project's store (data/mlflow.db, data/mlartifacts)
## on loopback until Ctrl-C; MLFLOW_PORT=5001 picks another port (docs/mlflow.md)
.PHONY: mlflow
mlflow: $(STAMP)
	$(VENV)/bin/visearch mlflow serve $(if $(MLFLOW_PORT),--port $(MLFLOW_PORT))
