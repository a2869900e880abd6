# Container images with podman, on a machine with no Docker engine and no registry
# (README "Container images"). Base images are bootstrapped from the Debian mirror once per
# machine and reused while their recipe is unchanged; `make test` runs the image tests.
.PHONY: images-deps base-images images test-images

IMAGES_TOOL := $(BIN)/python -m tools.images
# podman, its OCI runtime (crun fails on this kernel's cgroups), the init of `kube play`'s pause
# image (podman builds it locally from catatonit), and the rootfs builder.
IMAGES_APT_PACKAGES := podman runc mmdebstrap catatonit

images-deps: ## podman, runc, catatonit and mmdebstrap from Debian (installs them as root when missing)
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "images: podman runs rootful here (vfs storage, host network): run make as root" >&2; exit 1; \
	fi
	@missing=$$(for package in $(IMAGES_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; \
	done); \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

base-images: images-deps $(INSTALLED) ## Debian bookworm builder + runtime base images (mmdebstrap → podman import), rebuilt only when their recipe changes
	$(IMAGES_TOOL) base

images: base-images ui ## build the service and UI images with podman (tag: IMAGE_TAG, default the short commit)
	$(IMAGES_TOOL) build

test-images: images ## kube-play the Deployments cdktf synthesizes against real NATS/PostgreSQL: health, a photo end to end, spans, UI headers, pod security, image contents
	$(PYTEST) tests/integration/images
