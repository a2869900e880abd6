"""Fixtures of the image tests: the built images, a container set that is always cleaned up,
and the three service containers wired to a real nats-server and PostgreSQL.

The images must have been built (`make images`; `make test-images` builds them first). The
infrastructure comes from the same launchers as every integration test (devmesh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devmesh.nats import NatsServer
from devmesh.ports import free_port
from devmesh.postgres import PostgresServer
from tests.integration.images.containers import (
    SERVING,
    ContainerisedMesh,
    Containers,
    RunningService,
    health_status,
)
from tests.integration.images.environment import service_environment
from tools.images.names import SERVICES, UI_IMAGE_NAME, image_ref, image_tag
from tools.images.podman import image_id

# A cold classifier imports TensorFlow and loads its model: generous, never a timing test.
SERVING_TIMEOUT_SECONDS = 300.0


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """Image name -> reference of every image `make images` builds, for the current tag."""
    tag = image_tag()
    references = {name: image_ref(name, tag) for name in (*SERVICES, UI_IMAGE_NAME)}
    missing = [reference for reference in references.values() if image_id(reference) is None]
    if missing:
        pytest.fail(f"images not built: {', '.join(missing)}; run `make images` first")
    return references


@pytest.fixture
def containers() -> Iterator[Containers]:
    started = Containers()
    try:
        yield started
    finally:
        started.remove_all()


def serving(address: str) -> Callable[[], bool]:
    return lambda: health_status(address) == SERVING


@pytest.fixture(scope="module")
def mesh(
    built_images: dict[str, str],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ContainerisedMesh]:
    """dispatcher, classifier and reporting containers, each SERVING, on a fresh nats-server
    and a fresh database; removed (with the servers) at the end of the module."""
    workdir: Path = tmp_path_factory.mktemp("containerised-mesh")
    nats = NatsServer(
        port=free_port(),
        monitor_port=free_port(),
        store_dir=workdir / "nats",
        log_path=workdir / "nats.log",
        # The containers cannot read the host's password files (no volumes): anonymous.
        authenticated=False,
    )
    database_name = f"images_{workdir.name.replace('-', '_')}"
    started = Containers()
    database_url: str | None = None
    try:
        nats.start()
        database_url = postgres_server.create_database(database_name)
        services: dict[str, RunningService] = {}
        for name in SERVICES:
            grpc_port, metrics_port = free_port(), free_port()
            environment = service_environment(
                name,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                nats_url=nats.url,
                database_url=database_url if name == "reporting" else None,
            )
            container = started.start(built_images[name], environment)
            services[name] = RunningService(name, container, grpc_port, metrics_port)
        for service in services.values():
            service.container.wait_until(
                serving(service.address), "SERVING", SERVING_TIMEOUT_SECONDS
            )
        yield ContainerisedMesh(services, nats.url)
    finally:
        started.remove_all()
        nats.stop()
        if database_url is not None:
            postgres_server.drop_database(database_name)
