# Delivery: container images and the CI pipeline (bitbucket-pipelines.yml).
.PHONY: lint-docker

# One Dockerfile per service; build context = repo root, e.g.
#   docker build -f services/dispatcher/Dockerfile -t weather-mesh/dispatcher .
DOCKERFILES := $(sort $(wildcard services/*/Dockerfile docker/*Dockerfile* Dockerfile*))

lint-docker: $(INSTALLED) ## hadolint every Dockerfile (the services' images)
	$(BIN)/hadolint $(DOCKERFILES)
	@echo "hadolint: $(words $(DOCKERFILES)) Dockerfiles clean"
