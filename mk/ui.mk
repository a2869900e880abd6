# The browser UI (ui/): TypeScript client generated from protos/, built with vite, served by
# `make up` through Envoy at http://127.0.0.1:8080/. Browser tests drive Debian's chromium.
.PHONY: ui ui-deps ui-gen ui-gen-check ui-typecheck e2e-deps test-e2e docs-screenshot

UI_NODE_MODULES := ui/node_modules/.package-lock.json
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json ui/package.json
UI_DIST := ui/dist/index.html
CHROMIUM := /usr/bin/chromium

ui-deps: $(UI_NODE_MODULES) ## npm ci for ui/ (exact versions from ui/package-lock.json)

# npm ci deletes node_modules first, so two at once break each other (see build-once).
$(UI_NODE_MODULES): ui/package-lock.json
	$(call build-once,.cache/ui-deps.lock); \
	cd ui && npm ci --no-audit --no-fund; \
	touch $(CURDIR)/$@

ui: $(UI_DIST) ## type-check and build the UI into ui/dist (what `make up` serves)

# vite empties ui/dist first, so two builds at once (images and test-e2e in parallel) collide.
$(UI_DIST): $(UI_NODE_MODULES) $(UI_SOURCES)
	$(call build-once,.cache/ui-build.lock); \
	cd ui && npm run --silent build

ui-typecheck: $(UI_NODE_MODULES) ## tsc --noEmit over the UI (strict)
	cd ui && npm run --silent typecheck

# protoc-gen-es from ui/node_modules, buf from .venv: offline and pinned.
ui-gen: $(UI_NODE_MODULES) $(INSTALLED) ## regenerate ui/src/gen from protos/
	cd ui && PATH="$(BIN):$$PATH" npm run --silent generate

ui-gen-check: $(UI_NODE_MODULES) $(INSTALLED) ## the committed ui/src/gen matches protos/
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cd ui && PATH="$(BIN):$$PATH" buf generate --output "$$tmp" && \
	diff -r "$$tmp/src/gen" src/gen && echo "ui/src/gen: current"

# Chromium from Debian (Playwright's own download is not used); needs root when missing.
e2e-deps: $(INSTALLED) $(UI_NODE_MODULES) ## what the browser tests need: Debian chromium, node modules (playwright is pinned in pyproject)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "e2e-deps: $(CHROMIUM) is missing; run: sudo apt-get install -y chromium" >&2; exit 1; fi; \
	fi

test-e2e: e2e-deps ui ## the whole mesh + headless chromium: upload, history, stats, CORS, long Watch
	$(PYTEST) tests/e2e

docs-screenshot: e2e-deps ui ## refresh docs/ui.png (the README's screenshot) from the e2e run
	E2E_UPDATE_DOCS=1 $(PYTEST) tests/e2e/test_ui.py -k real_photo
