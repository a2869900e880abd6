"""Model delivery for real: the repository on a real nats-server, the publishing tool, and
classifiers as subprocesses with TensorFlow switching models while they serve."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import keras
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from meshkit.broker_layout import (
    CURRENT_MODEL_KEY,
    CURRENT_RELEASE_KEY,
    MODEL_RELEASES_BUCKET,
    MODEL_REPOSITORY_BUCKET,
    MODEL_REPOSITORY_STREAM,
    MODELS_BUCKET,
    RELEASES_MAX_BYTES,
    BrokerSettings,
    declare_model_repository,
)
from meshkit.broker_permissions import ADMIN_USER
from meshkit.model_repository import (
    current_model_version,
    describe_model,
    model_version,
    promote_model,
)
from services.classifier.model import DEFAULT_MODEL_PATH
from training import publish_model
from weather.v1 import classifier_pb2, classifier_pb2_grpc, job_pb2

SHIPPED = model_version(DEFAULT_MODEL_PATH.read_bytes())
SERVING = 1
SUCCEEDED = job_pb2.JOB_STATE_SUCCEEDED
ServiceProcess = Any
StartService = Any
# Generous: a switch loads TensorFlow's graph on 2 shared cores; the tests wait, never time.
SWITCH_DEADLINE_SECONDS = 120.0


@pytest.fixture(scope="session")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with another calibration temperature: real, loadable, new version."""
    keras_model = keras.saving.load_model(DEFAULT_MODEL_PATH, compile=False)
    keras_model.get_layer("probabilities").temperature *= 1.5
    path = tmp_path_factory.mktemp("models") / "recalibrated.keras"
    keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def wrong_shape_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `.keras` file whose output has three labels instead of four."""
    inputs = keras.Input((128, 128, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path_factory.mktemp("models") / "three_labels.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture
async def jetstream(nats_server: Any) -> AsyncIterator[JetStreamContext]:
    client: Client = await nats.connect(**nats_server.connect_options())
    context = client.jetstream()
    await declare_model_repository(context, BrokerSettings())
    yield context
    await client.close()


@pytest.fixture
def publish(nats_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`publish(*argv)`: the publishing tool's exit code, run as `make publish-model` runs it."""
    # As the local admin, the user `make publish-model` connects as (mk/model.mk).
    for name, value in nats_server.client_environment(ADMIN_USER, "MODELS_").items():
        monkeypatch.setenv(name, value)

    async def run(*argv: str) -> int:
        return await asyncio.to_thread(publish_model.main, list(argv))

    return run


async def classify_version(classifier: ServiceProcess, image: bytes) -> str:
    async with grpc.aio.insecure_channel(classifier.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        answer = await stub.Classify(classifier_pb2.ClassifyRequest(image=image), timeout=30)
    return str(answer.classification.model_version)


async def wait_for_version(classifier: ServiceProcess, image: bytes, version: str) -> None:
    deadline = time.monotonic() + SWITCH_DEADLINE_SECONDS
    seen = ""
    while time.monotonic() < deadline:
        seen = await classify_version(classifier, image)
        if seen == version:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"still answering {seen}, not {version}:\n{classifier.log()}")


async def wait_for_log(classifier: ServiceProcess, pattern: str) -> str:
    deadline = time.monotonic() + SWITCH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = re.search(pattern, classifier.log())
        if found:
            return found.group(0)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no log line matching {pattern!r}:\n{classifier.log()}")


async def wait_for_outcome(outcomes: list[tuple[int, str]], version: str, after: int = 0) -> None:
    """Until a continuously submitted job (from the `after`-th on) was answered by `version`."""
    deadline = time.monotonic() + SWITCH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if any(answered == version for _, answered in outcomes[after:]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no submitted job was answered by {version}: {outcomes[after:]}")


async def wait_for_announced(jetstream: JetStreamContext, version: str) -> None:
    """Until the models bucket (the dispatchers' result-cache key) names `version`."""
    models = await jetstream.key_value(MODELS_BUCKET)
    deadline = time.monotonic() + SWITCH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if (await models.get(CURRENT_MODEL_KEY)).value == version.encode():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the models bucket never named {version}")


class HealthWatch:
    """Polls a service's health in a thread until stopped: every status it saw, in order."""

    def __init__(self, service: ServiceProcess) -> None:
        self._service = service
        self._stop = threading.Event()
        self.statuses: list[int | None] = []
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.statuses.append(self._service.health())
            time.sleep(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def classifier(nats_server: Any, start_service: StartService) -> ServiceProcess:
    service = start_service("classifier", nats_url=nats_server.url, model_retry_seconds="0.5")
    service.wait_serving(timeout=120)
    return service


async def test_publishing_the_same_bytes_twice_stores_one_object(
    publish: Any, jetstream: JetStreamContext, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await publish("publish") == 0
    assert await publish("publish", str(DEFAULT_MODEL_PATH)) == 0
    out = capsys.readouterr().out
    assert f"published: {SHIPPED}" in out
    assert f"already published (nothing stored): {SHIPPED}" in out
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    assert [info.name for info in await store.list()] == [SHIPPED]
    stream = await jetstream.stream_info(MODEL_REPOSITORY_STREAM)
    assert stream.config.max_bytes == BrokerSettings().model_repository_max_bytes
    releases = await jetstream.stream_info(f"KV_{MODEL_RELEASES_BUCKET}")
    assert releases.config.max_bytes == RELEASES_MAX_BYTES
    published = await describe_model(jetstream, SHIPPED)
    assert published.size == DEFAULT_MODEL_PATH.stat().st_size
    assert published.published_by
    assert published.published_at
    assert await current_model_version(jetstream) is None, "publishing never promotes"


async def test_publishing_records_the_eval_metrics_of_that_model(
    publish: Any, jetstream: JetStreamContext, tmp_path: Path
) -> None:
    eval_output = tmp_path / "eval.txt"
    eval_output.write_text(
        f"val: n=3 accuracy=0.9\n"
        f'{{"n":3,"accuracy":0.9,"macro_f1":0.8,"model_version":"{SHIPPED}"}}\n'
    )
    assert await publish("publish", "--metrics", str(eval_output), "--by", "ci@test") == 0
    published = await describe_model(jetstream, SHIPPED)
    assert published.metrics == {"n": 3, "accuracy": 0.9, "macro_f1": 0.8, "model_version": SHIPPED}
    assert published.published_by == "ci@test"


async def test_unreadable_wrong_shape_or_mismeasured_models_are_refused_at_publish(
    publish: Any,
    jetstream: JetStreamContext,
    wrong_shape_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip file at all")
    other_metrics = tmp_path / "eval.json"
    other_metrics.write_text('{"accuracy":0.99,"model_version":"sha256:000000000000"}')
    assert await publish("publish", str(garbage)) == 1
    assert await publish("publish", str(wrong_shape_model)) == 1
    assert await publish("publish", "--metrics", str(other_metrics)) == 1
    assert await publish("promote", "sha256:0123456789ab") == 1
    errors = capsys.readouterr().err
    assert "cannot be served" in errors
    assert "(None, 3)" in errors
    assert "measured model sha256:000000000000" in errors
    assert "no model sha256:0123456789ab in the repository" in errors
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    with pytest.raises(NotFoundError):  # nats.py's answer for an empty bucket
        await store.list()


async def test_a_promoted_model_reaches_a_running_classifier_and_rollback_returns(
    pipeline: Any,
    publish: Any,
    jetstream: JetStreamContext,
    second_model: Path,
    photos: list[Path],
) -> None:
    """Jobs submitted continuously across both switches all succeed, and some reach each
    model; health never drops; the result cache answers per model version."""
    classifier = pipeline.classifier
    pid = classifier.process.pid
    second = model_version(await asyncio.to_thread(second_model.read_bytes))
    image = await asyncio.to_thread(photos[0].read_bytes)
    assert await classify_version(classifier, image) == SHIPPED
    before = await pipeline.submit(image, filename="before.jpg")
    assert (await pipeline.finished(before.id))[-1].classification.model_version == SHIPPED
    assert await publish("publish") == 0
    assert await publish("publish", str(second_model)) == 0

    stop = asyncio.Event()
    outcomes: list[tuple[int, str]] = []

    async def submit_continuously() -> None:
        for index in range(1_000_000):
            if stop.is_set():
                return
            photo = photos[index % len(photos)].read_bytes()
            job = await pipeline.submit(photo, filename=f"{index}.jpg")
            final = (await pipeline.finished(job.id))[-1]
            outcomes.append((final.state, final.classification.model_version))

    with HealthWatch(classifier) as health:
        submitter = asyncio.create_task(submit_continuously())
        await promote_model(jetstream, second)
        await wait_for_version(classifier, image, second)
        await wait_for_log(classifier, f"serving model {re.escape(second)}")
        await wait_for_outcome(outcomes, second)
        # The photo answered by the shipped model before: now answered by the new one, not
        # from the old one's cache entry; then from the new one's.
        await wait_for_announced(jetstream, second)
        for attempt in ("again", "cached"):
            resubmitted = await pipeline.submit(image, filename=f"{attempt}.jpg")
            final = (await pipeline.finished(resubmitted.id))[-1]
            assert final.classification.model_version == second, attempt
        assert resubmitted.state == SUCCEEDED, "the second resubmission came from the cache"
        await promote_model(jetstream, SHIPPED)  # rollback
        await wait_for_version(classifier, image, SHIPPED)
        await wait_for_outcome(outcomes, SHIPPED, after=len(outcomes))
        stop.set()
        await submitter
    assert health.statuses, "health was polled during the switches"
    assert set(health.statuses) == {SERVING}, health.statuses
    assert classifier.process.poll() is None, "no restart"
    assert classifier.process.pid == pid
    assert outcomes, "jobs were submitted across the switches"
    assert all(state == SUCCEEDED for state, _ in outcomes), outcomes
    assert {SHIPPED, second} >= {version for _, version in outcomes}
    announced = await (await jetstream.key_value(MODELS_BUCKET)).get(CURRENT_MODEL_KEY)
    assert announced.value == SHIPPED.encode(), "the dispatchers' cache follows the switch"
    releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
    history = [entry.value for entry in await releases.history(CURRENT_RELEASE_KEY)]
    assert history == [second.encode(), SHIPPED.encode()]
    for line in classifier.log().splitlines():  # TensorFlow's own lines, too, as JSON records
        assert json.loads(line)["service"] == "classifier", line


async def test_a_pinned_classifier_ignores_the_pointer(
    nats_server: Any,
    start_service: StartService,
    publish: Any,
    jetstream: JetStreamContext,
    second_model: Path,
    photos: list[Path],
    classifier: ServiceProcess,
) -> None:
    second = model_version(await asyncio.to_thread(second_model.read_bytes))
    image = await asyncio.to_thread(photos[1].read_bytes)
    assert await publish("publish", str(second_model)) == 0
    pinned = start_service(
        "classifier", nats_url=nats_server.url, model_version=second, model_retry_seconds="0.5"
    )
    pinned.wait_serving(timeout=120)
    assert await classify_version(pinned, image) == second
    assert await publish("publish") == 0
    await promote_model(jetstream, SHIPPED)
    await promote_model(jetstream, second)
    await wait_for_version(classifier, image, second)
    await promote_model(jetstream, SHIPPED)
    await wait_for_version(classifier, image, SHIPPED)
    assert await classify_version(pinned, image) == second
    assert "the current model pointer" not in pinned.log()


async def test_corrupt_wrong_shape_or_missing_models_are_never_served(
    nats_server: Any,
    start_service: StartService,
    classifier: ServiceProcess,
    jetstream: JetStreamContext,
    wrong_shape_model: Path,
    photos: list[Path],
) -> None:
    image = photos[2].read_bytes()
    releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
    # bytes stored under their own version, bypassing the tool's check: not a .keras file
    corrupt_bytes = b"PK\x03\x04 truncated zip"
    corrupt = model_version(corrupt_bytes)
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    await store.put(corrupt, corrupt_bytes)
    with HealthWatch(classifier) as health:
        await releases.put(CURRENT_RELEASE_KEY, corrupt.encode())
        await wait_for_log(
            classifier,
            rf"cannot load model {re.escape(corrupt)} from the repository.*"
            rf"keeping model {re.escape(SHIPPED)}",
        )
        assert await classify_version(classifier, image) == SHIPPED
        # a real .keras file with three outputs, stored bypassing the tool's check
        wrong_shape_bytes = await asyncio.to_thread(wrong_shape_model.read_bytes)
        wrong_shape = model_version(wrong_shape_bytes)
        await store.put(wrong_shape, wrong_shape_bytes)
        await releases.put(CURRENT_RELEASE_KEY, wrong_shape.encode())
        await wait_for_log(
            classifier,
            rf"cannot load model {re.escape(wrong_shape)} from the repository: "
            rf"model maps .*\(None, 3\)",
        )
        assert await classify_version(classifier, image) == SHIPPED
        # a pointer to an object that is not there
        await releases.put(CURRENT_RELEASE_KEY, b"sha256:000000000000")
        await wait_for_log(classifier, r"no model sha256:000000000000 in the repository")
        assert await classify_version(classifier, image) == SHIPPED
    assert set(health.statuses) == {SERVING}, health.statuses
    # a classifier starting while the pointer names nothing loadable serves the shipped file
    starting = start_service("classifier", nats_url=nats_server.url, model_retry_seconds="0.5")
    await asyncio.to_thread(starting.wait_serving, 120)
    assert await classify_version(starting, image) == SHIPPED
    await wait_for_log(starting, r"no model sha256:000000000000 in the repository")


async def test_a_promotion_after_a_broker_restart_still_reaches_the_classifier(
    nats_server: Any,
    classifier: ServiceProcess,
    publish: Any,
    jetstream: JetStreamContext,
    second_model: Path,
    photos: list[Path],
) -> None:
    """The pointer watch dies with the server's ephemeral consumer; the re-read finds it."""
    second = model_version(await asyncio.to_thread(second_model.read_bytes))
    image = await asyncio.to_thread(photos[3].read_bytes)
    assert await publish("publish", str(second_model)) == 0
    await asyncio.to_thread(nats_server.stop)
    await asyncio.to_thread(nats_server.start)
    await asyncio.to_thread(classifier.wait_serving, 120)
    await promote_model(jetstream, second)
    await wait_for_version(classifier, image, second)
