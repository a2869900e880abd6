# weather-mesh — every developer and CI entry point. Targets install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(INSTALLED) ## create .venv with the pinned packages and the binaries the mesh needs

# $(call build-once,<lock file>) starts a recipe that builds $@ from $^ while holding the lock.
# Targets started together in one checkout (`make lint & make test-unit`, the CI's parallel
# steps on one host) all find $@ out of date: one builds it, the others wait for the lock and
# then find $@ newer than its inputs, and build nothing.
build-once = mkdir -p $(dir $(1)); exec {lock}>$(1); flock "$$lock"; \
  if [ -f $@ ] && [ -z "$$(find $^ -newer $@)" ]; then echo "$@: built by a concurrent make"; exit 0; fi

# The lock is not passed on to the PostgreSQL install (a server it starts must not hold it).
$(INSTALLED): pyproject.toml constraints.txt
	$(call build-once,.cache/install.lock); \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'; \
	$(BIN)/python -m devmesh install {lock}>&-; \
	touch $@

.PHONY: constraints
constraints: ## re-pin every package (transitive ones too) from a fresh venv into constraints.txt
	rm -rf .cache/constraints-venv
	$(PYTHON) -m venv .cache/constraints-venv
	.cache/constraints-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; .cache/constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .cache/constraints-venv

include mk/*.mk
