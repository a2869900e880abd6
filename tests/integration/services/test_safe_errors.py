"""Every error a client can provoke is a documented status with a plain message: no class
names, no exception text, nothing the caller sent echoed back unbounded.

Real services as subprocesses on a real nats-server (and PostgreSQL for reporting); the
failures are provoked the way a hostile or unlucky client would, or by corrupting what the
broker stores (a bug nobody mapped must become INTERNAL with a correlation id).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2

from devmesh.ports import free_port
from meshkit.broker_layout import IDEMPOTENCY_BUCKET, idempotency_kv_key
from meshkit.safe_edge import CORRELATION_ID_FIELD
from services.reporting.query import INVALID_PAGE_TOKEN
from tools.proof.gateway import Metadata
from tools.proof.tokens import signed_in_channel
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, reporting_pb2, reporting_pb2_grpc

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
StartService = Any  # tests/integration/conftest.py
ServiceProcess = Any
TRUNCATED_MESSAGE = b"\x0a\x05ab"  # field 1, length 5, only 2 bytes follow
LEAK_MARKERS = ("<class", "Error", "Traceback", "/", "Exception")


def assert_plain(details: str | None) -> str:
    assert details, "a refusal must say why"
    for marker in LEAK_MARKERS:
        assert marker not in details, (marker, details)
    return details


@pytest.fixture
def dispatcher(nats_server: Any, start_service: StartService) -> ServiceProcess:
    service = start_service("dispatcher", nats_url=nats_server.url)
    service.wait_serving()
    return service


@pytest.fixture
def reporting(nats_server: Any, start_service: StartService, fresh_database: str) -> ServiceProcess:
    service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    service.wait_serving()
    return service


@pytest.fixture
async def dispatcher_stub(
    dispatcher: ServiceProcess,
) -> AsyncIterator[dispatcher_pb2_grpc.DispatcherServiceAsyncStub]:
    async with grpc.aio.insecure_channel(dispatcher.address) as channel:
        yield dispatcher_pb2_grpc.DispatcherServiceStub(channel)


async def _raw_call(
    address: str, method: str, body: bytes, streaming: bool
) -> grpc.aio.AioRpcError:
    """Send `body` as the request bytes, bypassing any client-side serializer."""

    async def call(channel: grpc.aio.Channel) -> None:
        if streaming:
            async for _ in channel.unary_stream(method, None, None)(body, timeout=10):
                pass
        else:
            await channel.unary_unary(method, None, None)(body, timeout=10)

    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(channel)
    return refused.value


async def test_undecodable_bodies_are_invalid_argument_naming_only_the_message_type(
    dispatcher: ServiceProcess, reporting: ServiceProcess
) -> None:
    calls = [
        (dispatcher, "/weather.v1.DispatcherService/Submit", "SubmitRequest", False),
        (dispatcher, "/weather.v1.DispatcherService/GetJob", "GetJobRequest", False),
        (dispatcher, "/weather.v1.DispatcherService/WatchJob", "WatchJobRequest", True),
        (reporting, "/weather.v1.ReportingService/GetStats", "GetStatsRequest", False),
        (reporting, "/weather.v1.ReportingService/ListJobs", "ListJobsRequest", False),
    ]
    for service, method, message_type, streaming in calls:
        error = await _raw_call(service.address, method, TRUNCATED_MESSAGE, streaming)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert error.details() == f"the request is not a valid weather.v1.{message_type} message"
    assert dispatcher.process.poll() is None
    assert reporting.process.poll() is None


async def test_out_of_range_windows_and_forged_page_tokens_are_invalid_argument(
    reporting: ServiceProcess, operator: Metadata
) -> None:
    async with signed_in_channel(reporting.address, operator) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        for seconds, nanos in ((2**62, 0), (-(2**62), 0), (0, -1), (0, 2_000_000_000)):
            stats = reporting_pb2.GetStatsRequest()
            stats.window.start.seconds, stats.window.start.nanos = seconds, nanos
            listing = reporting_pb2.ListJobsRequest()
            listing.window.end.seconds, listing.window.end.nanos = seconds, nanos
            with pytest.raises(grpc.aio.AioRpcError) as stats_refused:
                await stub.GetStats(stats, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as list_refused:
                await stub.ListJobs(listing, timeout=10)
            for refused, field in ((stats_refused, "window.start"), (list_refused, "window.end")):
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                details = assert_plain(refused.value.details())
                assert details.startswith(f"{field} must be between 0001-01-01T00:00:00Z")

        # A token as the service once made them, unsigned, carrying a NUL into the query.
        forged = reporting_pb2.ListJobsPageToken(
            last_submitted_at_micros=1, last_job_id="a\x00b", filter_digest=b"12345678"
        ).SerializeToString()
        for token in (
            base64.urlsafe_b64encode(forged).decode(),
            base64.urlsafe_b64encode(forged + b"\x00" * 16).decode(),
            "A" * 100_000,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListJobs(reporting_pb2.ListJobsRequest(page_token=token), timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details() == INVALID_PAGE_TOKEN
    assert reporting.process.poll() is None


async def test_request_fields_are_bounded_and_never_echoed(
    dispatcher_stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub, photos: list[Path]
) -> None:
    photo = photos[0].read_bytes()
    hostile = "x" * 10_000
    refusals = [
        dispatcher_pb2.SubmitRequest(image=photo, filename="a\x00b.jpg"),
        dispatcher_pb2.SubmitRequest(image=photo, idempotency_key=hostile),
        dispatcher_pb2.SubmitRequest(image=photo, idempotency_key="k\x00"),
    ]
    for request in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await dispatcher_stub.Submit(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "xxxx" not in assert_plain(refused.value.details())
    for job_id in (hostile, "\u202e" * 50):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await dispatcher_stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job_id), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert job_id[:4] not in assert_plain(missing.value.details())

    spoofed = "holiday\u202egpj.exe\r\n" + "é" * 300
    accepted = await dispatcher_stub.Submit(
        dispatcher_pb2.SubmitRequest(image=photo, filename=spoofed), timeout=30
    )
    shown = accepted.job.filename
    assert shown.startswith("holidaygpj.exeé")
    assert len(shown.encode("utf-8")) <= 255
    stored = await dispatcher_stub.GetJob(
        dispatcher_pb2.GetJobRequest(job_id=accepted.job.id), timeout=10
    )
    assert stored.job.filename == shown


async def test_an_unmapped_failure_is_internal_with_a_reference_found_in_the_log(
    nats_server: Any,
    dispatcher: ServiceProcess,
    dispatcher_stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
    photos: list[Path],
) -> None:
    """A corrupt idempotency record is a failure no handler maps (nobody foresaw it)."""
    client = await nats.connect(**nats_server.connect_options())
    try:
        bucket = await client.jetstream().key_value(IDEMPOTENCY_BUCKET)
        await bucket.put(idempotency_kv_key("corrupted"), b"{not json at /srv/secret.py")
    finally:
        await client.close()
    request = dispatcher_pb2.SubmitRequest(
        image=photos[0].read_bytes(), idempotency_key="corrupted"
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await dispatcher_stub.Submit(request, timeout=30)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    details = assert_plain(failed.value.details())
    assert "json" not in details.lower()
    assert "secret" not in details
    reference = details.split("reference ")[1].split()[0]
    logged = [json.loads(line) for line in dispatcher.log().splitlines() if line.startswith("{")]
    [record] = [entry for entry in logged if entry.get(CORRELATION_ID_FIELD) == reference]
    assert "JSONDecodeError" in record["exc_info"]
    # The service keeps serving.
    assert dispatcher.health() is not None
    assert dispatcher.process.poll() is None


async def test_an_unreachable_broker_is_unavailable_without_client_class_names(
    start_service: StartService, photos: list[Path]
) -> None:
    service = start_service("dispatcher", nats_url=f"nats://127.0.0.1:{free_port()}")
    service.wait_for_health(NOT_SERVING)  # no broker, but the server answers
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as submit_refused:
            await stub.Submit(
                dispatcher_pb2.SubmitRequest(image=photos[0].read_bytes()), timeout=30
            )
        with pytest.raises(grpc.aio.AioRpcError) as get_refused:
            await stub.GetJob(dispatcher_pb2.GetJobRequest(job_id="0" * 32), timeout=30)
        for refused in (submit_refused, get_refused):
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert assert_plain(refused.value.details()) == (
                "the job broker is unavailable; retry shortly"
            )
    assert "job broker unavailable during" in service.log()
