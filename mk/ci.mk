# Delivery: what bitbucket-pipelines.yml runs besides the checks, and `make ci-local`, which runs
# one of its pipelines on this machine as Bitbucket would (README "Delivery").
.PHONY: audit ci-local push-images push-images-now ci-deploy ci-deploy-now

# --- Test reports ---------------------------------------------------------------------------
# Every pytest target writes JUnit XML under test-results/, where Bitbucket's test reporting
# reads it; `TEST_RESULTS=` (empty) turns it off.
TEST_RESULTS ?= test-results
ifneq ($(strip $(TEST_RESULTS)),)
test-unit test-integration test-images test-e2e: export PYTEST_ADDOPTS += --junitxml=$(abspath $(TEST_RESULTS))/$@.xml
endif

# --- Dependency audit -----------------------------------------------------------------------
# --strict: a package the vulnerability service cannot answer for fails the audit, because
# "not checked" is not "clean". Both audits run, so one report shows everything; reports/ keeps
# their output as a pipeline artifact.
AUDIT_SERVICE ?= pypi
REPORTS := reports

audit: $(INSTALLED) ## pip-audit of constraints.txt + npm audit of ui/: fails on a finding or an unchecked package
	@mkdir -p $(REPORTS)
	status=0; \
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
	  --vulnerability-service $(AUDIT_SERVICE) -r constraints.txt 2>&1 | tee $(REPORTS)/pip-audit.txt || status=1; \
	(cd ui && npm audit --audit-level=low) 2>&1 | tee $(REPORTS)/npm-audit.txt || status=1; \
	exit $$status

# --- Steps that need credentials: one gate ---------------------------------------------------
# $(call when-secrets,<what>,<VARIABLE ...>,<command>) runs <command> when every VARIABLE is set
# (Bitbucket's secured variables), else says which are missing and succeeds (tools/ci/secrets.py).
# The gate runs on the system python3 so that a skipped step installs nothing.
when-secrets = $(PYTHON) -m tools.ci.secrets --purpose '$(1)' --require $(2) -- $(3)

# Images are tagged with the commit everywhere (tools/images and cdktf/main.py read IMAGE_TAG
# the same way); the rollback pipeline sets IMAGE_TAG to an older tag.
IMAGE_TAG ?= $(shell git rev-parse --short HEAD)
# Images `make images` builds: one per service package, and the UI.
IMAGE_NAMES := $(patsubst services/%/__main__.py,%,$(wildcard services/*/__main__.py)) ui
REGISTRY_SECRETS := REGISTRY REGISTRY_USER REGISTRY_PASSWORD

push-images: ## build every image and push it as REGISTRY/weather-mesh/<name>:IMAGE_TAG (skips without registry credentials)
	$(call when-secrets,push images $(IMAGE_TAG),$(REGISTRY_SECRETS),$(MAKE) push-images-now)

# The engine that built the images pushes them: podman (with the images tool's own config,
# where it files `weather-mesh/x` as `localhost/weather-mesh/x`) when present, else docker
# (Bitbucket's docker service). CONTAINER_ENGINE=... chooses.
push-images-now:
	$(MAKE) images IMAGE_TAG=$(IMAGE_TAG)
	engine=$${CONTAINER_ENGINE:-$$(command -v podman >/dev/null && echo podman || echo docker)}; \
	prefix=; if [ "$$engine" = podman ]; then eval "$$($(BIN)/python -m tools.images env)"; prefix=localhost/; fi; \
	printenv REGISTRY_PASSWORD | $$engine login --username "$$REGISTRY_USER" --password-stdin "$$REGISTRY"; \
	for name in $(IMAGE_NAMES); do \
	  remote="$$REGISTRY/weather-mesh/$$name:$(IMAGE_TAG)"; \
	  $$engine tag "$${prefix}weather-mesh/$$name:$(IMAGE_TAG)" "$$remote"; \
	  $$engine push "$$remote"; \
	done

# Bitbucket deployment environments (test, staging, production) deploy the cdktf environments
# dev, staging and prod. In a deployment step DEPLOYMENT is the step's own environment.
CDKTF_ENV.test := dev
CDKTF_ENV.staging := staging
CDKTF_ENV.production := prod
DEPLOYMENTS := $(patsubst CDKTF_ENV.%,%,$(filter CDKTF_ENV.%,$(.VARIABLES)))
DEPLOYMENT ?= $(BITBUCKET_DEPLOYMENT_ENVIRONMENT)
# What mk/deploy.mk's terraform needs from a build machine (AWS: the cluster and its state).
DEPLOY_SECRETS := AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

ci-deploy: ## cdktf diff then deploy of IMAGE_TAG to DEPLOYMENT=test|staging|production (skips without cloud credentials)
	@if [ -z "$(CDKTF_ENV.$(DEPLOYMENT))" ]; then \
	  echo "ci-deploy: DEPLOYMENT='$(DEPLOYMENT)' is none of: $(DEPLOYMENTS)" >&2; exit 2; fi
	$(call when-secrets,deploy $(IMAGE_TAG) to $(DEPLOYMENT) (cdktf ENV=$(CDKTF_ENV.$(DEPLOYMENT))),$(DEPLOY_SECRETS),$(MAKE) ci-deploy-now)

ci-deploy-now:
	$(MAKE) diff ENV=$(CDKTF_ENV.$(DEPLOYMENT)) IMAGE_TAG=$(IMAGE_TAG)
	$(MAKE) deploy ENV=$(CDKTF_ENV.$(DEPLOYMENT)) IMAGE_TAG=$(IMAGE_TAG)

# --- The local runner -----------------------------------------------------------------------
PIPELINE ?= pull-requests
STEPS ?=
# The project's tests read ../shared beside the checkout; the clone gets the same.
SHARED ?= $(abspath $(CURDIR)/../shared)

CI_LOCAL_OPTIONS = --pipeline '$(PIPELINE)' --steps '$(STEPS)' --shared '$(SHARED)' \
  $(if $(JOBS),--jobs $(JOBS)) $(if $(filter 1,$(KEEP)),--keep) \
  $(if $(filter 1,$(RUN_MANUAL)),--run-manual) $(foreach v,$(VARS),--var '$(v)')

ci-local: $(INSTALLED) ## run PIPELINE=pull-requests|main|custom:<name> here as Bitbucket would, in a fresh clone [STEPS=a,b JOBS=n]
	$(BIN)/python -m tools.ci $(strip $(CI_LOCAL_OPTIONS))
