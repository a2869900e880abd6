# Code quality and tests: what `make test` (and so CI) runs.
.PHONY: test lint lint-imports format typecheck sast proto proto-check buf-lint buf-breaking test-unit test-integration settings-doc

PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

# Each suite gets its own pytest base directory, named after this checkout. pytest's default
# (/tmp/pytest-of-<user>/pytest-N, only the newest three kept) lets a run in another checkout
# on the same machine delete this run's temporary directories under its feet.
PYTEST_TMP := /tmp/weather-mesh-pytest-$(shell printf %s '$(CURDIR)' | cksum | cut -d' ' -f1)
test-unit test-integration test-images test-e2e: export PYTEST_ADDOPTS += --basetemp=$(PYTEST_TMP)-$@

test: lint lint-imports requirements-check typecheck sast secrets-scan proto-check lint-docker ui-typecheck ui-gen-check test-unit test-integration test-images test-e2e ## everything CI runs: lint, layers, pins, types, SAST, contract checks, unit, integration, container and browser tests

lint: $(INSTALLED) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(INSTALLED) ## mypy --strict over every Python package
	$(BIN)/mypy .

sast: $(INSTALLED) ## bandit over every Python file we ship; fails on medium severity and above
	$(BIN)/bandit -q -c pyproject.toml -r . --severity-level medium --confidence-level low

.PHONY: secrets-scan secrets-baseline

secrets-scan: $(INSTALLED) ## detect-secrets over every tracked file; fails on a finding not reviewed in .secrets.baseline
	$(BIN)/python -m tools.secrets_check

secrets-baseline: $(INSTALLED) ## rewrite .secrets.baseline from a fresh scan (keeps verdicts; review new entries)
	$(BIN)/python -m tools.secrets_check --update

proto: $(INSTALLED) ## regenerate Python code and stubs from protos/
	$(BIN)/python tools/gen_protos.py

proto-check: buf-lint buf-breaking $(INSTALLED) ## buf lint + breaking, and generated code is current
	$(BIN)/python tools/gen_protos.py --check

buf-lint: $(INSTALLED)
	$(BIN)/buf lint
	@echo "buf lint: clean"

# BUF_AGAINST=<branch or commit>: against that ref (CI: a pull request's target branch; a
# branch missing locally is fetched from origin). Without it: against the previous commit, or
# against HEAD when protos/ has uncommitted edits, so a developer sees a breaking change
# before committing it.
BUF_AGAINST ?=

buf-breaking: $(INSTALLED)
	@if [ -n "$(BUF_AGAINST)" ]; then \
	  base=$$(git rev-parse -q --verify "$(BUF_AGAINST)^{commit}" || \
	    git rev-parse -q --verify "origin/$(BUF_AGAINST)^{commit}" || \
	    { git fetch -q origin "$(BUF_AGAINST)" && git rev-parse FETCH_HEAD; }) || \
	    { echo "buf breaking: BUF_AGAINST=$(BUF_AGAINST) is no commit or branch here or on origin" >&2; exit 1; }; \
	elif git diff --quiet HEAD -- protos 2>/dev/null; then base=HEAD~1; else base=HEAD; fi; \
	if git rev-parse -q --verify "$$base^{commit}" >/dev/null && git cat-file -e "$$base:buf.yaml" 2>/dev/null; then \
	  $(BIN)/buf breaking --against ".git#ref=$$(git rev-parse $$base)" && \
	  echo "buf breaking: no breaking change against $(or $(BUF_AGAINST),$$(git rev-parse --short $$base)) ($$(git rev-parse --short $$base))"; \
	else \
	  echo "buf breaking: no earlier commit with buf.yaml to compare against"; \
	fi

test-unit: $(INSTALLED) ## pure-logic tests, no network
	$(PYTEST) tests/unit

test-integration: $(INSTALLED) ## tests against real nats-server, PostgreSQL, Envoy and TensorFlow
	$(PYTEST) tests/integration --ignore=tests/integration/images

settings-doc: $(INSTALLED) ## print the README's settings table from the settings classes
	$(BIN)/python -m tools.settings_doc

lint-imports: $(INSTALLED) ## the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
	$(BIN)/lint-imports --no-cache
