# One image recipe for the three services. Build context = the repository root:
#   podman build -f images/service.Dockerfile --target runtime --build-arg SERVICE=dispatcher \
#     --build-arg BUILDER_IMAGE=… --build-arg BASE_IMAGE=… -t weather-mesh/dispatcher:<tag> .
# Registry base images are pinned by digest in images/base-images.env.
#
# install: pip from the builder puts the service's hash-pinned requirements and its own code
#          (kit, generated contract, the one service) into /opt/weather-mesh: no venv, since
#          the builder's and the runtime's interpreters live at different paths.
# runtime: distroless-style Python 3.11 without shell or pip, so no RUN: files, env, user.

ARG BUILDER_IMAGE=localhost/weather-mesh/python-builder:bookworm
ARG BASE_IMAGE=localhost/weather-mesh/python-runtime:bookworm

FROM ${BUILDER_IMAGE} AS install
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every file pip installs is checked against the sha256 in the requirements file.
COPY requirements/${SERVICE}.txt requirements.txt
RUN python3 -m pip install --no-deps --require-hashes --only-binary=:all: \
        --target /opt/weather-mesh -r requirements.txt
COPY gen/python/weather /opt/weather-mesh/weather
COPY meshkit /opt/weather-mesh/meshkit
COPY services/__init__.py services/__main__.py /opt/weather-mesh/services/
COPY services/${SERVICE} /opt/weather-mesh/services/${SERVICE}

FROM ${BASE_IMAGE} AS runtime
ARG SERVICE
ARG VERSION=dev
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="weather-mesh ${SERVICE}" \
      org.opencontainers.image.source="https://bitbucket.org/weather-mesh/weather-mesh" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}"
COPY --from=install /opt/weather-mesh /opt/weather-mesh
# Nothing is written outside /tmp: no bytecode cache, logs on stdout, and HOME (where Keras
# and friends keep caches) in /tmp, so a read-only root file system works.
ENV PYTHONPATH=/opt/weather-mesh \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    WEATHER_MESH_SERVICE=${SERVICE}
USER 10001:10001
# `python3 -m services` runs services.<WEATHER_MESH_SERVICE> (an exec-form ENTRYPOINT cannot
# expand a build argument, and the runtime has no shell to do it).
ENTRYPOINT ["python3", "-m", "services"]
