"""The gateway as browsers meet it: the CORS allow-list and a WatchJob that outlives a minute.

This module's mesh runs without the classifier, so a submitted job stays QUEUED and its
WatchJob stream stays open with nothing to say: exactly the stream an idle timeout cuts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import RunningMesh, start_mesh
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

pytestmark = pytest.mark.timeout(600)  # a mesh start plus a 75 s stream

FOREIGN_ORIGIN = "http://foreign.example"
LONG_STREAM_SECONDS = 75
# GetStats with an empty request: one gRPC-Web frame, flag 0, length 0.
GRPC_WEB_FETCH = """async ([url, token]) => {
    try {
        const response = await fetch(url + "/weather.v1.ReportingService/GetStats", {
            method: "POST",
            headers: {
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "authorization": "Bearer " + token,
            },
            body: new Uint8Array([0, 0, 0, 0, 0]),
        });
        const body = new TextDecoder("latin1").decode(await response.arrayBuffer());
        return {ok: true, status: response.status, trailers: body.includes("grpc-status:0")};
    } catch (error) {
        return {ok: false, error: String(error)};
    }
}"""


@pytest.fixture(scope="module")
def mesh() -> Iterator[RunningMesh]:
    yield from start_mesh("dispatcher,reporting", "mesh-no-classifier")


def test_the_api_answers_the_ui_origin(page: Page, mesh: RunningMesh) -> None:
    page.goto(mesh.gateway + "/")
    result = page.evaluate(GRPC_WEB_FETCH, [mesh.gateway, mesh.token("e2e-operator", "operator")])
    assert result == {"ok": True, "status": 200, "trailers": True}


def test_a_page_from_an_origin_off_the_allow_list_cannot_call_the_api(
    page: Page, mesh: RunningMesh
) -> None:
    page.route(
        FOREIGN_ORIGIN + "/**",
        lambda route: route.fulfill(content_type="text/html", body="<title>elsewhere</title>"),
    )
    page.goto(FOREIGN_ORIGIN + "/")
    upstream_before = mesh.envoy_stat("cluster.reporting.upstream_rq_total")

    result = page.evaluate(GRPC_WEB_FETCH, [mesh.gateway, mesh.token("e2e-operator", "operator")])

    assert result["ok"] is False, result
    assert "Failed to fetch" in result["error"]
    # Envoy answered the preflight itself, so the POST never reached the reporting service.
    assert mesh.envoy_stat("cluster.reporting.upstream_rq_total") == upstream_before


def _submit(mesh: RunningMesh, photo: Path) -> str:
    with grpc.insecure_channel(mesh.grpc_target) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        reply = stub.Submit(
            dispatcher_pb2.SubmitRequest(image=photo.read_bytes(), filename=photo.name), timeout=30
        )
    assert reply.job.state == job_pb2.JOB_STATE_QUEUED
    return str(reply.job.id)


def test_watch_job_streams_through_envoy_outlive_seventy_seconds(
    page: Page, mesh: RunningMesh, photos: dict[str, Path], artifacts: Path
) -> None:
    """Both ways in at once: gRPC over h2c (grpcurl's path) and gRPC-Web from the UI."""
    job_id = _submit(mesh, photos["cloudy"])
    grpc_updates: list[int] = []
    grpc_errors: list[grpc.RpcError] = []
    channel = grpc.insecure_channel(mesh.grpc_target)
    stream = dispatcher_pb2_grpc.DispatcherServiceStub(channel).WatchJob(
        dispatcher_pb2.WatchJobRequest(job_id=job_id)
    )

    def consume() -> None:
        try:
            for update in stream:
                grpc_updates.append(update.job.state)
        except grpc.RpcError as error:
            grpc_errors.append(error)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()

    page.goto(mesh.gateway + "/")
    page.evaluate(
        """() => {
            window.statusLog = [];
            const status = document.querySelector("#job-status");
            new MutationObserver(() => window.statusLog.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.get_by_label("Choose a photo").set_input_files(photos["shine"])
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#job-status")).to_contain_text("Queued")
    watch_requests_before = mesh.envoy_stat("http.gateway.downstream_rq_total")

    page.wait_for_timeout(LONG_STREAM_SECONDS * 1000)

    try:
        assert consumer.is_alive(), f"the gRPC WatchJob ended early: {grpc_errors}"
        assert grpc_updates == [job_pb2.JOB_STATE_QUEUED]
        status_log: list[str] = page.evaluate("window.statusLog")
        assert not any("Lost the live connection" in status for status in status_log), status_log
        expect(page.locator("#job-status")).to_contain_text("Queued")
        # No reconnect happened: the browser made no new request through the gateway.
        assert mesh.envoy_stat("http.gateway.downstream_rq_total") == watch_requests_before
        assert mesh.envoy_stat("cluster.dispatcher.upstream_rq_active") >= 2
        page.screenshot(path=str(artifacts / "queued-after-75s.png"), full_page=True)
    finally:
        stream.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped
        channel.close()
        consumer.join(timeout=5)
