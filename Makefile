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

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m devmesh install
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
