# The weather classifier: train it, measure it, time it (see services/classifier/MODEL_CARD.md).
WEATHER_DATA ?= $(CURDIR)/../shared/datasets/weather
DATA ?= $(WEATHER_DATA)/val
MODEL_ENV := TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

.PHONY: train eval bench-model

train: $(INSTALLED) ## retrain the shipped classifier from scratch (~15 min on 2 cores), print val metrics
	$(MODEL_ENV) $(BIN)/python -m training.train --data $(WEATHER_DATA)

eval: $(INSTALLED) ## evaluate the shipped classifier on DATA=<dir of label/ folders>; last line is JSON
	$(MODEL_ENV) $(BIN)/python -m training.evaluate $(DATA)

bench-model: $(INSTALLED) ## images/s of the shipped classifier per runtime and batch size, peak RSS
	$(MODEL_ENV) $(BIN)/python bench/bench_model.py --photos $(WEATHER_DATA)/val
