"""Container images of the mesh, built and run with podman on a machine with no registry.

`python -m tools.images` (driven by mk/images.mk) bootstraps the Debian base images with
mmdebstrap, builds the service and UI images, and prints how long each step took.
"""
