"""Every service: health follows its dependencies, reflection works, SIGTERM drains cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.proof.gateway import Metadata

SERVICES_ON_NATS = ["dispatcher", "classifier"]
BUF = str(Path(sys.executable).with_name("buf"))

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# How long the classifier may take to become SERVING, and to exit after SIGTERM.
CLASSIFIER_STARTUP_SECONDS = 300.0
StartService = Any  # the `start_service` fixture's factory (see conftest.py)

EXPECTED_METHODS = {
    "dispatcher": [
        "weather.v1.DispatcherService/GetJob",
        "weather.v1.DispatcherService/Submit",
        "weather.v1.DispatcherService/WatchJob",
    ],
    "classifier": ["weather.v1.ClassifierService/Classify"],
    "reporting": [
        "weather.v1.ReportingService/GetStats",
        "weather.v1.ReportingService/ListJobs",
    ],
}


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def start_any(name: str, start_service: StartService, nats_url: str, pg_dsn: str) -> Any:
    extra = {"database_url": pg_dsn} if name == "reporting" else {}
    return start_service(name, nats_url=nats_url, **extra)


@pytest.mark.parametrize("name", SERVICES_ON_NATS)
def test_health_follows_nats_down_and_back_without_restart(
    name: str, start_service: StartService, nats_server: Any
) -> None:
    service = start_service(name, nats_url=nats_server.url)
    service.wait_for_health(SERVING)
    pid = service.process.pid

    nats_server.stop()
    service.wait_for_health(NOT_SERVING)

    nats_server.start()
    service.wait_for_health(SERVING)
    assert service.process.pid == pid
    assert service.process.poll() is None


def test_service_started_before_nats_waits_then_serves(
    start_service: StartService, nats_server: Any
) -> None:
    nats_server.stop()
    service = start_service("dispatcher", nats_url=nats_server.url)
    service.wait_for_health(NOT_SERVING)
    time.sleep(2)
    assert service.process.poll() is None, "the service gave up instead of waiting for NATS"
    assert service.health() == NOT_SERVING

    nats_server.start()
    service.wait_for_health(SERVING)


def test_reporting_health_follows_postgres(
    start_service: StartService, nats_server: Any, postgres_server: Any
) -> None:
    service = start_service(
        "reporting",
        nats_url=nats_server.url,
        database_url=postgres_server.dsn,
        database_check_interval_seconds="0.3",
    )
    service.wait_for_health(SERVING)
    postgres_server.stop()
    try:
        service.wait_for_health(NOT_SERVING)
    finally:
        postgres_server.start()
    service.wait_for_health(SERVING)


@pytest.mark.parametrize("name", ["dispatcher", "classifier", "reporting"])
def test_reflection_lists_the_contract_and_health_is_per_service(
    name: str, start_service: StartService, nats_server: Any, postgres_server: Any
) -> None:
    service = start_any(name, start_service, nats_server.url, postgres_server.dsn)
    service.wait_for_health(SERVING)

    listed = buf_curl("--list-methods", f"http://{service.address}")
    assert listed.returncode == 0, listed.stderr
    methods = listed.stdout.split()
    for method in EXPECTED_METHODS[name]:
        assert method in methods
    assert "grpc.health.v1.Health/Check" in methods

    grpc_service = EXPECTED_METHODS[name][0].split("/")[0]
    checked = buf_curl(
        "-d",
        json.dumps({"service": grpc_service}),
        f"http://{service.address}/grpc.health.v1.Health/Check",
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == {"status": "SERVING"}


@pytest.mark.parametrize("method", EXPECTED_METHODS["reporting"])
def test_reporting_rpcs_answer_on_an_empty_database(
    method: str,
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
    operator: Metadata,
) -> None:
    # Every RPC is built now (tests/integration/services and tests/integration/services/reporting
    # cover them in depth); over plain gRPC, an empty history is an empty answer.
    service = start_any("reporting", start_service, nats_server.url, fresh_database)
    service.wait_for_health(SERVING)
    headers = [arg for name, value in operator for arg in ("-H", f"{name}: {value}")]
    called = buf_curl(*headers, "-d", "{}", f"http://{service.address}/{method}")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {}


def test_sigterm_reports_not_serving_then_exits_cleanly(
    start_service: StartService, nats_server: Any
) -> None:
    service = start_service("dispatcher", nats_url=nats_server.url)
    service.wait_for_health(SERVING)

    statuses: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        with grpc.insecure_channel(service.address) as channel:
            stream = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=30
            )
            try:
                for response in stream:
                    statuses.append(response.status)
                    watching.set()
            except grpc.RpcError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert watching.wait(10)
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0
    watcher.join(timeout=30)
    assert statuses[0] == SERVING
    assert NOT_SERVING in statuses[1:], f"health never said NOT_SERVING while draining: {statuses}"
    log = service.log()
    assert "dispatcher shutting down" in log
    assert "dispatcher stopped" in log


def test_port_in_use_is_reported_by_number(start_service: StartService, nats_server: Any) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        service = start_service("dispatcher", nats_url=nats_server.url, grpc_port=str(taken))
        assert service.process.wait(timeout=30) == 2
    assert f"127.0.0.1:{taken}" in service.log()


def test_invalid_setting_stops_the_service_with_the_variable_named(
    start_service: StartService,
) -> None:
    service = start_service("dispatcher", shutdown_grace_seconds="-1")
    assert service.process.wait(timeout=30) == 2
    assert "shutdown_grace_seconds" in service.log()


def test_logs_are_json_lines_with_the_service_name(
    start_service: StartService, nats_server: Any
) -> None:
    service = start_service("classifier", nats_url=nats_server.url)
    # TensorFlow's import and the model load take minutes on a busy 2-core runner: wait on
    # readiness itself, with the cluster's own startup budget as the (generous) bound.
    service.wait_for_health(SERVING, timeout=CLASSIFIER_STARTUP_SECONDS)
    assert service.terminate(timeout=CLASSIFIER_STARTUP_SECONDS) == 0
    records = [json.loads(line) for line in service.log().splitlines() if line.strip()]
    assert records, "no log lines"
    assert all(record["service"] == "classifier" for record in records)
    assert {"time", "level", "logger", "message"} <= set(records[0])


def test_metrics_endpoint_reports_dependency_state(
    start_service: StartService, nats_server: Any
) -> None:
    import urllib.request

    service = start_service("dispatcher", nats_url=nats_server.url)
    service.wait_for_health(SERVING)
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics") as response:
        body = response.read().decode()
    assert 'weather_dependency_up{dependency="nats"} 1.0' in body
    assert "weather_serving 1.0" in body
    assert shutil.which(BUF)
