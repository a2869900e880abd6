# The weather classifier: train it, measure it, time it (see services/classifier/MODEL_CARD.md).
WEATHER_DATA ?= $(CURDIR)/../shared/datasets/weather
DATA ?= $(WEATHER_DATA)/val
MODEL_ENV := TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

# TRAIN_ARGS: e.g. `--seeds 6 7 --members-dir .cache/members` trains two members and keeps each one.
TRAIN_ARGS ?=
MEMBERS ?=
ASSEMBLE_ARGS ?=

.PHONY: train assemble-model eval bench-model publish-model promote-model models

train: $(INSTALLED) ## retrain the shipped classifier from scratch (~15 min on 2 idle cores) [TRAIN_ARGS=...], print val metrics
	$(MODEL_ENV) $(BIN)/python -m training.train --data $(WEATHER_DATA) $(TRAIN_ARGS)

assemble-model: $(INSTALLED) ## join saved MEMBERS="a.keras b.keras ..." into the shipped file, calibrated on val
	@test -n "$(MEMBERS)" || { echo "usage: make assemble-model MEMBERS='<member .keras files>' [ASSEMBLE_ARGS=--flip]"; exit 2; }
	$(MODEL_ENV) $(BIN)/python -m training.assemble $(MEMBERS) --val $(WEATHER_DATA)/val --output services/classifier/weather_classifier.keras --report training/last_training_run.json $(ASSEMBLE_ARGS)

eval: $(INSTALLED) ## evaluate the shipped classifier on DATA=<dir of label/ folders>; last line is JSON
	$(MODEL_ENV) $(BIN)/python -m training.evaluate $(DATA)

bench-model: $(INSTALLED) ## images/s of the shipped classifier per runtime and batch size, peak RSS
	$(MODEL_ENV) $(BIN)/python bench/bench_model.py --photos $(WEATHER_DATA)/val

# The model repository on the broker (services/classifier/README.md, "Model delivery");
# the broker is MODELS_NATS_URL (default: the one `make up` starts).
MODEL ?=
METRICS ?=
# `make up`'s broker admits its own users only: the tools connect as its local admin, whose
# password the mesh generates under .data/ on its first start. For another broker set
# MODELS_NATS_URL, MODELS_NATS_USER and MODELS_NATS_PASSWORD_FILE.
publish-model promote-model models: export MODELS_NATS_USER ?= devmesh
publish-model promote-model models: export MODELS_NATS_PASSWORD_FILE ?= $(CURDIR)/.data/nats/credentials/devmesh

publish-model: $(INSTALLED) ## store MODEL=<.keras> (default: shipped) [METRICS=<make eval output>] in the broker's model repository
	$(MODEL_ENV) $(BIN)/python -m training.publish_model publish $(MODEL) $(if $(METRICS),--metrics $(METRICS))

promote-model: $(INSTALLED) ## point the classifiers at VERSION=sha256:… (rollback: promote the previous one); no restart
	@test -n "$(VERSION)" || { echo "usage: make promote-model VERSION=sha256:<12 hex>"; exit 2; }
	$(BIN)/python -m training.publish_model promote $(VERSION)

models: $(INSTALLED) ## the current model pointer and the versions it named
	$(BIN)/python -m training.publish_model show
