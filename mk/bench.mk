# Pipeline benchmark: figures only, never a failure on timing (see bench/bench_pipeline.py).
BENCH_PHOTOS ?= $(CURDIR)/../shared/datasets/weather
BENCH_CONCURRENCY ?= 64

.PHONY: bench

bench: $(INSTALLED) ## JSON lines: model limit, Classify and Submit→SUCCEEDED throughput, p50/p99, ratio to the limit
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python bench/bench_pipeline.py --photos $(BENCH_PHOTOS) --concurrency $(BENCH_CONCURRENCY)
