"""Fixtures of the image tests: the built images, and the app stack's Deployments as cdktf
synthesizes them, kube-played against a real nats-server, PostgreSQL and OTLP receiver.

The images must have been built (`make images`; `make test-images` builds them first). The
infrastructure comes from the same launchers as every integration test (devmesh).
"""

from __future__ import annotations

import functools
import http.server
import secrets
import threading
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
from devmesh.tokens import LocalIssuer
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
from tools.proof.gateway import Metadata
from tools.proof.tokens import operator_metadata
from weather_deploy.charts import JAEGER_OTLP, NATS_CLIENT, nats_users
from weather_deploy.istio_objects import ISTIO_DIR, edge_token_rule, load_istio_objects
from weather_deploy.workloads import NATS_PASSWORD_KEY, nats_password_secret

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


@pytest.fixture(scope="session")
def cluster_token_rule() -> dict[str, Any]:
    """The edge's token rule (issuer, audiences, JWKS URI) the Deployments are given."""
    return edge_token_rule(load_istio_objects(ISTIO_DIR))


@pytest.fixture(scope="session")
def cluster_issuer(
    cluster_token_rule: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> LocalIssuer:
    """Stands in for the cluster's identity provider: the same issuer and audience, a key
    made for this session (the played services fetch its JWKS from `cluster_jwks`)."""
    (audience,) = cluster_token_rule["audiences"]
    issuer = LocalIssuer(
        tmp_path_factory.mktemp("cluster-identity"), cluster_token_rule["issuer"], audience
    )
    issuer.ensure_key()
    return issuer


@pytest.fixture(scope="session")
def cluster_jwks(cluster_issuer: LocalIssuer) -> Iterator[str]:
    """The stand-in provider's JWKS over HTTP on loopback (pods share the host's network)."""
    directory = str(cluster_issuer.jwks_path.parent)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{cluster_issuer.jwks_path.name}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def cluster_operator(cluster_issuer: LocalIssuer) -> Metadata:
    """An operator's token as the cluster's provider would sign it (demo mode is off there)."""
    return operator_metadata(cluster_issuer)


@pytest.fixture(scope="module")
def mesh(
    built_images: dict[str, str],
    postgres_server: PostgresServer,
    span_sink: tuple[SpanSink, int],
    cluster_token_rule: dict[str, Any],
    cluster_jwks: str,
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
        # The same per-service users and rights as the cluster's NATS: each pod connects as
        # its service, with the password file its Deployment mounts from its own Secret.
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
                cluster_token_rule["jwksUri"]: cluster_jwks,
            },
            secret_values={
                "REPORTING_DATABASE_URL": postgres_server.runtime_dsn_for(database_name),
                "REPORTING_MIGRATION_DATABASE_URL": database_url,
                "REPORTING_PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
                **{
                    f"{nats_password_secret(user)}/{NATS_PASSWORD_KEY}": nats.password_file(
                        user
                    ).read_text(encoding="utf-8")
                    for user in nats_users()
                },
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
        yield KubePlayedMesh(
            synthesized,
            play,
            services,
            ui,
            ui_port,
            nats.url,
            nats.monitor_url,
            postgres_server.dsn_for(database_name),
        )
    finally:
        if pods is not None:
            pods.remove()
        nats.stop()
        if database_url is not None:
            postgres_server.drop_database(database_name)
