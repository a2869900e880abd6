"""Fixtures of the image tests: the built images, and the app stack's Deployments as cdktf
synthesizes them, kube-played against a real nats-server, PostgreSQL and OTLP receiver.

The images must have been built (`make images`; `make test-images` builds them first). The
infrastructure comes from the same launchers as every integration test (devmesh).
"""

from __future__ import annotations

import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from devmesh.nats import NatsServer
from devmesh.ports import free_port
from devmesh.postgres import PostgresServer
from tests.integration.images.containers import (
    SERVING,
    Container,
    KubePlayedMesh,
    RunningService,
    health_status,
)
from tests.integration.images.kube_pods import PLAYED, PlayedPods, synthesized_app
from tests.integration.images.otlp_sink import SpanSink
from tools.images.kube_play import LocalMachine, adapt
from tools.images.names import SERVICES, UI_IMAGE_NAME, image_ref, image_tag
from tools.images.podman import image_id
from weather_deploy.charts import JAEGER_OTLP, NATS_CLIENT

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


@pytest.fixture(scope="module")
def span_sink() -> Iterator[tuple[SpanSink, int]]:
    sink = SpanSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    yield sink, port
    server.stop(None)


def serving(address: str) -> Callable[[], bool]:
    return lambda: health_status(address) == SERVING


def answers_http(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):  # nosec B310
                return True
        except OSError:
            return False

    return check


@pytest.fixture(scope="module")
def mesh(
    built_images: dict[str, str],
    postgres_server: PostgresServer,
    span_sink: tuple[SpanSink, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KubePlayedMesh]:
    """The app stack's dispatcher, classifier, reporting and UI Deployments (synthesized by
    cdktf, adapted by tools.images.kube_play) played with `podman kube play --network host`
    on a fresh nats-server and database, each service SERVING; all removed at the end."""
    workdir: Path = tmp_path_factory.mktemp("kube-played-mesh")
    nats = NatsServer(
        port=free_port(),
        monitor_port=free_port(),
        store_dir=workdir / "nats",
        log_path=workdir / "nats.log",
    )
    database_name = f"images_{workdir.name.replace('-', '_')}"
    database_url: str | None = None
    pods: PlayedPods | None = None
    try:
        nats.start()
        database_url = postgres_server.create_database(database_name)
        synthesized: list[dict[str, Any]] = synthesized_app(image_tag())
        machine = LocalMachine(
            image_refs=built_images,
            addresses={
                NATS_CLIENT.address: f"127.0.0.1:{nats.port}",
                JAEGER_OTLP.address: f"127.0.0.1:{span_sink[1]}",
            },
            secret_values={
                "REPORTING_DATABASE_URL": database_url,
                "REPORTING_PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
            },
            suffix=uuid.uuid4().hex[:8],
        )
        play = adapt(synthesized, PLAYED, machine, free_port)
        pods = PlayedPods(play, workdir)
        started = time.monotonic()
        print(pods.start())
        services = {
            name: RunningService(
                name,
                Container(play.container_name(name, name), built_images[name]),
                play.ports[name]["grpc"],
                play.ports[name]["http-metrics"],
            )
            for name in SERVICES
        }
        for service in services.values():
            service.container.wait_until(
                serving(service.address), "SERVING", SERVING_TIMEOUT_SECONDS
            )
        ui_port = play.ports[UI_IMAGE_NAME]["http"]
        ui = Container(play.container_name(UI_IMAGE_NAME, UI_IMAGE_NAME), built_images["ui"])
        ui.wait_until(answers_http(ui_port), "answering HTTP", SERVING_TIMEOUT_SECONDS)
        print(f"kube play to all SERVING: {time.monotonic() - started:.1f} s")
        yield KubePlayedMesh(synthesized, play, services, ui, ui_port, nats.url)
    finally:
        if pods is not None:
            pods.remove()
        nats.stop()
        if database_url is not None:
            postgres_server.drop_database(database_name)
