# Proof harnesses (issues #13/#14): load, chaos and DAST against a real local mesh on
# free ports (or the one `make up` runs, with RUNNING=1). Loopback only, bounded in time.
N ?= 64
T ?= 60
RUNNING ?=
PROOF_TARGET := $(if $(RUNNING),--running,)
QUEUE_BOUND ?=
LOAD_QUEUE_BOUND := $(if $(QUEUE_BOUND),--service-env DISPATCHER_MAX_QUEUE_DEPTH=$(QUEUE_BOUND),)

.PHONY: load chaos dast

load: $(INSTALLED) ## N clients (default 64) for T seconds (default 60) through the gateway: throughput, latency, errors, RSS [QUEUE_BOUND=n]
	$(BIN)/python -m tools.load --clients $(N) --seconds $(T) $(PROOF_TARGET) $(LOAD_QUEUE_BOUND)

chaos: $(INSTALLED) ## kill/restart every component under a photo stream; fails on any lost, stuck or doubled job
	$(BIN)/python -m tools.chaos

dast: $(INSTALLED) ## hostile requests, frames, origins, images and tokens through the gateway; fails on any violation
	$(BIN)/python -m tools.dast $(PROOF_TARGET)
