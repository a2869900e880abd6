# The UI's static files (ui/dist, built by `make ui`), served non-root on port 8080.
# Build context = the repository root:
#   podman build -f images/ui.Dockerfile --build-arg BASE_IMAGE=… -t weather-mesh/ui:<tag> .
# The server is devmesh's stdlib file server (tools/images/ui_server.py), so the image needs
# only the services' runtime base: distroless python3-debian12 in a registry (pinned in
# images/base-images.env), localhost/weather-mesh/python-runtime:bookworm here. No shell,
# no RUN; nothing is written at run time (read-only root filesystem).
ARG BASE_IMAGE=localhost/weather-mesh/python-runtime:bookworm

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="weather-mesh ui" \
      org.opencontainers.image.description="The weather-mesh browser UI's static files" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}"
# devmesh.static and what it imports are standard library only.
COPY devmesh /opt/weather-mesh/devmesh
COPY tools/__init__.py /opt/weather-mesh/tools/__init__.py
COPY tools/images/__init__.py tools/images/ui_server.py /opt/weather-mesh/tools/images/
COPY ui/dist /srv/ui
ENV PYTHONPATH=/opt/weather-mesh \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UI_PORT=8080 \
    UI_ROOT=/srv/ui
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "tools.images.ui_server"]
