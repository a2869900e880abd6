"""Identity and ownership for real: Envoy (jwt_authn) in front of the dispatcher and reporting
on a real nats-server and PostgreSQL, tokens from the session's local identity provider.

Every refusal is checked twice where it matters: at the gateway, and sent straight to the
service's own port (a call that skips the gateway is refused too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from devmesh.envoy import EnvoyProxy, GatewayConfig
from devmesh.ports import free_port
from devmesh.tokens import LocalIssuer
from meshkit.identity import TOKEN_REQUIRED
from tools.dast.auth import unsigned_token
from tools.proof.gateway import Metadata
from tools.proof.tokens import bearer
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, reporting_pb2, reporting_pb2_grpc

StartService = Any  # tests/integration/conftest.py
ServiceProcess = Any
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


@dataclass
class Mesh:
    """The gateway and the two public services, one address each."""

    gateway: str
    dispatcher: str
    reporting: str


def _envoy(
    tmp_path: Path,
    issuer: LocalIssuer,
    dispatcher: ServiceProcess,
    reporting: ServiceProcess,
    anonymous_demo: bool,
) -> EnvoyProxy:
    return EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=dispatcher.grpc_port,
            reporting_port=reporting.grpc_port,
            allowed_origins=["http://localhost:8080"],
            ui_port=free_port(),
            jwks_file=issuer.jwks_path,
            anonymous_demo=anonymous_demo,
        ),
        config_path=tmp_path / "envoy.yaml",
        log_path=tmp_path / "envoy.log",
    )


def _start(
    tmp_path: Path,
    issuer: LocalIssuer,
    start_service: StartService,
    nats_url: str,
    database_url: str,
    anonymous_demo: bool,
) -> tuple[Mesh, EnvoyProxy]:
    demo = "true" if anonymous_demo else "false"
    dispatcher = start_service("dispatcher", nats_url=nats_url, auth_anonymous_demo=demo)
    reporting = start_service(
        "reporting", nats_url=nats_url, database_url=database_url, auth_anonymous_demo=demo
    )
    dispatcher.wait_serving()
    reporting.wait_serving()
    proxy = _envoy(tmp_path, issuer, dispatcher, reporting, anonymous_demo)
    proxy.start()
    gateway = f"127.0.0.1:{proxy.config.listener_port}"
    return Mesh(gateway, dispatcher.address, reporting.address), proxy


@pytest.fixture
def demo_mesh(
    tmp_path: Path,
    local_issuer: LocalIssuer,
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
) -> Iterator[Mesh]:
    """As `make up` runs it: anonymous demo mode on."""
    mesh, proxy = _start(
        tmp_path, local_issuer, start_service, nats_server.url, fresh_database, True
    )
    yield mesh
    proxy.stop()


@pytest.fixture
def strict_mesh(
    tmp_path: Path,
    local_issuer: LocalIssuer,
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
) -> Iterator[Mesh]:
    """As the cluster runs it: every call needs a token."""
    mesh, proxy = _start(
        tmp_path, local_issuer, start_service, nats_server.url, fresh_database, False
    )
    yield mesh
    proxy.stop()


@pytest.fixture
async def channels(demo_mesh: Mesh) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    async with (
        grpc.aio.insecure_channel(demo_mesh.gateway) as gateway,
        grpc.aio.insecure_channel(demo_mesh.dispatcher) as dispatcher,
        grpc.aio.insecure_channel(demo_mesh.reporting) as reporting,
    ):
        yield {"gateway": gateway, "dispatcher": dispatcher, "reporting": reporting}


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _listed(channel: grpc.aio.Channel, metadata: Metadata) -> dict[str, str]:
    """job id -> owner of every job ListJobs shows this caller (one page is enough here)."""
    stub = reporting_pb2_grpc.ReportingServiceStub(channel)
    response = await stub.ListJobs(
        reporting_pb2.ListJobsRequest(page_size=100), metadata=metadata, timeout=10
    )
    return {job.id: job.owner for job in response.jobs}


async def _until_listed(
    channel: grpc.aio.Channel, metadata: Metadata, job_id: str
) -> dict[str, str]:
    """Reporting records events asynchronously: wait (bounded) until the job shows."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = await _listed(channel, metadata)
        if job_id in listed:
            return listed
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} never listed for its owner")


async def test_one_user_cannot_list_another_users_jobs_and_an_operator_lists_all(
    channels: dict[str, grpc.aio.Channel], local_issuer: LocalIssuer, photos: list[Path]
) -> None:
    alice = bearer(local_issuer.mint("alice"))
    bob = bearer(local_issuer.mint("bob"))
    operator = bearer(local_issuer.mint("olivia", "operator"))
    gateway = channels["gateway"]
    submit = dispatcher_pb2_grpc.DispatcherServiceStub(gateway).Submit
    alices = await submit(
        dispatcher_pb2.SubmitRequest(image=photos[0].read_bytes(), filename="alice.jpg"),
        metadata=alice,
        timeout=30,
    )
    bobs = await submit(
        dispatcher_pb2.SubmitRequest(image=photos[1].read_bytes(), filename="bob.jpg"),
        metadata=bob,
        timeout=30,
    )
    assert alices.job.owner == "alice"
    assert bobs.job.owner == "bob"

    listed_by_alice = await _until_listed(gateway, alice, alices.job.id)
    listed_by_bob = await _until_listed(gateway, bob, bobs.job.id)
    assert set(listed_by_alice.values()) == {"alice"}
    assert bobs.job.id not in listed_by_alice
    assert alices.job.id not in listed_by_bob
    everyone = await _until_listed(gateway, operator, alices.job.id)
    assert {everyone[alices.job.id], everyone[bobs.job.id]} == {"alice", "bob"}
    # Straight to the service: the same answer.
    assert alices.job.id not in await _listed(channels["reporting"], bob)

    # The job id is the capability: bob may read alice's job if he is given its id.
    get_job = dispatcher_pb2_grpc.DispatcherServiceStub(gateway).GetJob
    seen = await get_job(dispatcher_pb2.GetJobRequest(job_id=alices.job.id), metadata=bob)
    assert seen.job.owner == "alice"


async def test_a_viewer_is_denied_the_stats_and_an_operator_gets_them(
    channels: dict[str, grpc.aio.Channel], local_issuer: LocalIssuer
) -> None:
    viewer = bearer(local_issuer.mint("victor"))
    operator = bearer(local_issuer.mint("olivia", "operator"))
    for where in ("gateway", "reporting"):
        stub = reporting_pb2_grpc.ReportingServiceStub(channels[where])
        request = reporting_pb2.GetStatsRequest()
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.GetStats(request, metadata=viewer, timeout=10)
        assert denied.value.code() == PERMISSION_DENIED, where
        assert (
            denied.value.details() == "GetStats needs the operator role; this token grants viewer"
        )
        await stub.GetStats(request, metadata=operator, timeout=10)


async def test_anonymous_callers_may_submit_in_demo_mode_but_never_list_or_read_stats(
    channels: dict[str, grpc.aio.Channel], photos: list[Path]
) -> None:
    for where, dispatcher, reporting in (
        ("gateway", "gateway", "gateway"),
        ("services", "dispatcher", "reporting"),
    ):
        submitted = await dispatcher_pb2_grpc.DispatcherServiceStub(channels[dispatcher]).Submit(
            dispatcher_pb2.SubmitRequest(image=photos[2].read_bytes()), timeout=30
        )
        assert submitted.job.owner == ""
        stub = reporting_pb2_grpc.ReportingServiceStub(channels[reporting])
        for call in (
            stub.ListJobs(reporting_pb2.ListJobsRequest(), timeout=10),
            stub.GetStats(reporting_pb2.GetStatsRequest(), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == UNAUTHENTICATED, where
            assert refused.value.details() == TOKEN_REQUIRED


def _bad_tokens(issuer: LocalIssuer, tmp_path: Path) -> dict[str, str]:
    now = int(time.time())
    forger = LocalIssuer(tmp_path / "forger")
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "mallory", "roles": ["operator"]}
    return {
        "forged (another key)": forger.mint("mallory", "operator"),
        "expired": issuer.mint("mallory", "operator", exp=now - 3600, iat=now - 7200),
        "wrong issuer": issuer.mint("mallory", "operator", iss="https://evil.example"),
        "alg none": unsigned_token(
            {"alg": "none", "typ": "JWT"}, {**claims, "exp": now + 600}, b""
        ),
    }


async def test_bad_tokens_are_refused_at_the_gateway_and_by_the_services(
    channels: dict[str, grpc.aio.Channel], local_issuer: LocalIssuer, tmp_path: Path
) -> None:
    """Even where anonymous callers are welcome (demo mode, GetJob): a bad token is refused."""
    unknown_job = dispatcher_pb2.GetJobRequest(job_id="0" * 32)
    for name, token in _bad_tokens(local_issuer, tmp_path).items():
        for where, dispatcher, reporting in (
            ("gateway", "gateway", "gateway"),
            ("services", "dispatcher", "reporting"),
        ):
            metadata = bearer(token)
            reports = reporting_pb2_grpc.ReportingServiceStub(channels[reporting])
            jobs = dispatcher_pb2_grpc.DispatcherServiceStub(channels[dispatcher])
            codes = [
                await _code(reports.GetStats(reporting_pb2.GetStatsRequest(), metadata=metadata)),
                await _code(reports.ListJobs(reporting_pb2.ListJobsRequest(), metadata=metadata)),
                await _code(jobs.GetJob(unknown_job, metadata=metadata)),
            ]
            assert codes == [UNAUTHENTICATED] * 3, f"{name} via {where}: {codes}"


async def test_a_genuine_token_for_another_audience_grants_nothing(
    channels: dict[str, grpc.aio.Channel], local_issuer: LocalIssuer
) -> None:
    """Envoy answers 403 for a token made for another service; the services say the same."""
    metadata = bearer(local_issuer.mint("mallory", "operator", aud="someone-else"))
    unknown_job = dispatcher_pb2.GetJobRequest(job_id="0" * 32)
    for where, dispatcher, reporting in (
        ("gateway", "gateway", "gateway"),
        ("services", "dispatcher", "reporting"),
    ):
        reports = reporting_pb2_grpc.ReportingServiceStub(channels[reporting])
        jobs = dispatcher_pb2_grpc.DispatcherServiceStub(channels[dispatcher])
        codes = [
            await _code(reports.GetStats(reporting_pb2.GetStatsRequest(), metadata=metadata)),
            await _code(reports.ListJobs(reporting_pb2.ListJobsRequest(), metadata=metadata)),
            await _code(jobs.GetJob(unknown_job, metadata=metadata)),
        ]
        assert codes == [PERMISSION_DENIED] * 3, f"via {where}: {codes}"


async def test_without_demo_mode_the_gateway_refuses_anonymous_submissions(
    strict_mesh: Mesh, local_issuer: LocalIssuer, photos: list[Path]
) -> None:
    request = dispatcher_pb2.SubmitRequest(image=photos[3].read_bytes())
    for address in (strict_mesh.gateway, strict_mesh.dispatcher):
        async with grpc.aio.insecure_channel(address) as channel:
            submit = dispatcher_pb2_grpc.DispatcherServiceStub(channel).Submit
            assert await _code(submit(request, timeout=30)) == UNAUTHENTICATED, address
            signed_in = await submit(
                request, metadata=bearer(local_issuer.mint("carol")), timeout=30
            )
            assert signed_in.job.owner == "carol"


async def test_idempotency_keys_are_per_owner(
    channels: dict[str, grpc.aio.Channel], local_issuer: LocalIssuer, photos: list[Path]
) -> None:
    """bob reusing alice's key gets his own job, never hers."""
    submit = dispatcher_pb2_grpc.DispatcherServiceStub(channels["gateway"]).Submit
    request = dispatcher_pb2.SubmitRequest(image=photos[4].read_bytes(), idempotency_key="k-1")
    alice = bearer(local_issuer.mint("alice"))
    first = await submit(request, metadata=alice, timeout=30)
    again = await submit(request, metadata=alice, timeout=30)
    bobs = await submit(request, metadata=bearer(local_issuer.mint("bob")), timeout=30)
    assert again.job.id == first.job.id
    assert bobs.job.id != first.job.id
    assert (first.job.owner, bobs.job.owner) == ("alice", "bob")
