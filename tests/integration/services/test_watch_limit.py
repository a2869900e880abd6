"""The cap on open WatchJob streams per client, through the real gateway to the real
dispatcher: the gateway names the client, the dispatcher counts its streams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devmesh.envoy import EnvoyProxy, GatewayConfig
from devmesh.nats import NatsServer
from devmesh.ports import free_port
from devmesh.tokens import LocalIssuer
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

ALLOWANCE = 2


@pytest.fixture
def dispatcher_behind_gateway(
    tmp_path: Path, nats_server: NatsServer, start_service: Any, local_issuer: LocalIssuer
) -> Iterator[EnvoyProxy]:
    """A dispatcher (no classifier: jobs stay queued) behind Envoy."""
    dispatcher = start_service(
        "dispatcher", nats_url=nats_server.url, watch_max_streams_per_client=str(ALLOWANCE)
    )
    dispatcher.wait_serving()
    proxy = EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=dispatcher.grpc_port,
            reporting_port=free_port(),
            allowed_origins=["http://127.0.0.1:8080"],
            ui_port=free_port(),
            jwks_file=local_issuer.jwks_path,
            anonymous_demo=True,  # anonymous callers, each known by its address
        ),
        config_path=tmp_path / "envoy" / "envoy.yaml",
        log_path=tmp_path / "envoy.log",
    )
    proxy.start()
    yield proxy
    proxy.stop()


async def test_a_client_holds_at_most_its_allowance_of_open_watches(
    dispatcher_behind_gateway: EnvoyProxy, photos: list[Path]
) -> None:
    address = f"127.0.0.1:{dispatcher_behind_gateway.config.listener_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        submitted = await stub.Submit(
            dispatcher_pb2.SubmitRequest(image=photos[0].read_bytes(), filename="a.jpg"),
            timeout=30,
        )
        job_id = submitted.job.id
        request = dispatcher_pb2.WatchJobRequest(job_id=job_id)
        watches = [stub.WatchJob(request, timeout=60) for _ in range(ALLOWANCE)]
        for watch in watches:  # each is open: it has said QUEUED and waits for more
            first = await watch.read()
            assert isinstance(first, dispatcher_pb2.WatchJobResponse)
            assert first.job.state == job_pb2.JOB_STATE_QUEUED
        refused = stub.WatchJob(request, timeout=60)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await refused.read()
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "WatchJob streams open" in (error.value.details() or "")

        watches[0].cancel()
        outcomes = []
        for _ in range(100):  # the dispatcher frees the slot when the stream ends
            outcomes.append(await _first_state(stub, request))
            if outcomes[-1] != "RESOURCE_EXHAUSTED":
                break
            await asyncio.sleep(0.1)
        assert outcomes[-1] == "JOB_STATE_QUEUED", outcomes
        for watch in watches[1:]:
            watch.cancel()


async def _first_state(stub: Any, request: dispatcher_pb2.WatchJobRequest) -> str:
    """What a new watch says first: the job's state, or the status it is refused with."""
    watch = stub.WatchJob(request, timeout=60)
    try:
        reply = await watch.read()
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    finally:
        watch.cancel()
    return str(job_pb2.JobState.Name(reply.job.state))
