"""One real mesh (NATS, PostgreSQL, the three services, Envoy) for the proof harnesses'
own tests, started the way the harnesses start it. The classifier's ack wait is short so
that a job held by a killed classifier comes back within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tools.proof.mesh import LocalMesh

READY_LIMIT_SECONDS = 240.0


@pytest.fixture(scope="package")
def proof_mesh() -> Iterator[LocalMesh]:
    mesh = LocalMesh(service_env={"CLASSIFIER_ACK_WAIT_SECONDS": "5"})
    try:
        asyncio.run(mesh.start(READY_LIMIT_SECONDS))
        yield mesh
    finally:
        mesh.close()
