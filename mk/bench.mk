# Pipeline benchmark and capacity model: figures only, never a failure on timing
# (bench/pipeline.py, bench/capacity.py).
BENCH_PHOTOS ?= $(or $(WEATHER_DATASET),$(CURDIR)/../shared/datasets/weather)
BENCH_CONCURRENCY ?= 64
BENCH_FIGURES ?= bench/figures.json

.PHONY: bench capacity

bench: $(INSTALLED) ## the whole mesh through Envoy vs the model's limit, goals beside the figures; writes $(BENCH_FIGURES)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m bench.pipeline --photos $(BENCH_PHOTOS) --concurrency $(BENCH_CONCURRENCY) --figures $(BENCH_FIGURES)

capacity: $(INSTALLED) ## CAPACITY.md from the bench's figures ($(BENCH_FIGURES)): replicas, cores, memory, storage at 10/100/1000 photos/s
	$(BIN)/python -m bench.capacity --figures $(BENCH_FIGURES) --out CAPACITY.md
