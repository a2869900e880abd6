# Delivery: the services' hash-pinned requirements and their one container image recipe.
.PHONY: requirements requirements-check lint-docker

SERVICES := dispatcher classifier reporting
SERVICE_REQUIREMENTS := $(SERVICES:%=requirements/%.txt)

# requirements/<service>.txt: the kit's dependencies + the service's extra, every package
# (transitive ones too) at its constraints.txt version, with the sha256 of every PyPI file;
# what the image installs with `pip install --require-hashes`. Needs PyPI; ~1 min each.
requirements: $(INSTALLED) ## regenerate the hash-pinned requirements/<service>.txt (pip-compile)
	mkdir -p requirements
	for service in $(SERVICES); do \
	  CUSTOM_COMPILE_COMMAND="make requirements" $(BIN)/pip-compile --quiet --generate-hashes \
	    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	    --extra $$service -c constraints.txt --output-file requirements/$$service.txt pyproject.toml; \
	done

requirements-check: $(INSTALLED) ## requirements/<service>.txt pin exactly what pyproject + constraints.txt say (offline)
	$(BIN)/python -m tools.requirements_check $(SERVICES)

# One Dockerfile for the three services; build context = repo root, e.g.
#   podman build -f images/service.Dockerfile --build-arg SERVICE=dispatcher \
#     --target runtime -t weather-mesh/dispatcher .
DOCKERFILES := $(sort $(wildcard images/*Dockerfile))

lint-docker: $(INSTALLED) ## hadolint every Dockerfile under images/
	$(BIN)/hadolint $(DOCKERFILES)
	@echo "hadolint: $(words $(DOCKERFILES)) Dockerfiles clean"
