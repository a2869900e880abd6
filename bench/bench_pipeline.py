"""`make bench`: how close the pipeline gets to the model's own limit, on real photos.

Prints one JSON object per line and never fails on timing:
- `limit`: the shipped model's best single-process throughput from photo bytes (decode +
  preprocess in two threads + one forward pass per batch, best batch size), and its per-image
  latency at batch 1;
- `classify`: the classifier's Classify RPC with `--concurrency` calls in flight;
- `pipeline`: Submit → SUCCEEDED through the dispatcher, JetStream and the classifier with
  `--concurrency` jobs in flight, every photo distinct so the result cache never helps;
- `pipeline_low_load`: one job at a time, to see what the hops add to the limit's latency.
Each carries p50/p99 latency and its ratio to the limit. The services run as subprocesses
on a private nats-server, exactly as deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.nats import NatsServer
from devmesh.ports import free_port
from weather.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    job_pb2,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO_ROOT / "services" / "classifier" / "weather_classifier.keras"


def emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_figures(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_s, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 2),
    }


def distinct_photos(root: Path) -> list[bytes]:
    """Every photo of the dataset once (by content), val first."""
    seen: set[str] = set()
    photos: list[bytes] = []
    for split in ("val", "train"):
        for path in sorted((root / split).glob("*/*")):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if path.is_file() and digest not in seen:
                seen.add(digest)
                photos.append(data)
    if not photos:
        raise SystemExit(f"no photos under {root}: the weather dataset is needed")
    return photos


def measure_limit(model_path: Path, photos: list[bytes]) -> dict[str, float]:
    """Best throughput from photo bytes in this process: two threads decode and resize the
    next batch while the model runs the current one (what the classifier does, minus every
    hop), at the best batch size; plus the per-image latency of one photo at a time."""
    import numpy as np

    from services.classifier.model import WeatherModel
    from services.classifier.preprocess import preprocess

    model = WeatherModel.load(model_path)
    best: tuple[float, int] = (0.0, 1)
    with ThreadPoolExecutor(2) as pool:

        def decoded(batch: list[bytes]) -> np.ndarray:
            return np.stack(list(pool.map(preprocess, batch)))

        single: list[float] = []
        for data in photos[:40]:
            started = time.perf_counter()
            model.predict(decoded([data]))
            single.append(time.perf_counter() - started)
        with ThreadPoolExecutor(1) as ahead:
            for batch_size in (8, 16, 32, 64):
                batches = [
                    photos[start : start + batch_size]
                    for start in range(0, len(photos) - batch_size + 1, batch_size)
                ]
                model.predict(decoded(batches[0]))  # warm-up for this shape
                images, index = 0, 0
                started = time.perf_counter()
                upcoming = ahead.submit(decoded, batches[0])
                while time.perf_counter() - started < 3.0:
                    pixels = upcoming.result()
                    index += 1
                    upcoming = ahead.submit(decoded, batches[index % len(batches)])
                    model.predict(pixels)
                    images += batch_size
                upcoming.result()
                rate = images / (time.perf_counter() - started)
                best = max(best, (rate, batch_size))
    return {
        "images_per_second": round(best[0], 1),
        "batch_size": best[1],
        "single_image_p50_ms": round(statistics.median(single) * 1000, 2),
    }


@contextmanager
def service(name: str, workdir: Path, nats_server: NatsServer, **settings: str) -> Iterator[str]:
    """A service subprocess connected as its own NATS user; yields its address once SERVING."""
    prefix = name.upper() + "_"
    port = free_port()
    env = {
        **os.environ,
        **nats_server.client_environment(name, prefix),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        f"{prefix}GRPC_PORT": str(port),
        f"{prefix}METRICS_PORT": "0",
        f"{prefix}LOG_LEVEL": "WARNING",
        **{prefix + key.upper(): value for key, value in settings.items()},
    }
    with (workdir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(  # fixed argv: our own module
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, process)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"service at {address} exited with {process.returncode}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"service at {address} not SERVING after {timeout}s")


async def closed_loop(
    calls: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `calls` calls with `concurrency` in flight; return (calls per second, latencies)."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < calls:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - started), latencies


async def bench_classify(
    address: str, photos: list[bytes], calls: int, concurrency: int
) -> tuple[float, list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def classify(index: int) -> None:
            image = photos[index % len(photos)]
            await stub.Classify(classifier_pb2.ClassifyRequest(image=image), timeout=120)

        await closed_loop(concurrency, concurrency, classify)  # warm-up
        return await closed_loop(calls, concurrency, classify)


@dataclass
class PipelineRun:
    images_per_second: float
    latencies: list[float]
    submit_latencies: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


async def bench_pipeline(address: str, photos: list[bytes], concurrency: int) -> PipelineRun:
    """Submit then watch to the end, each photo once (the cache must not help)."""
    submit_latencies: list[float] = []
    job_ids: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)

        async def submit_and_wait(index: int) -> None:
            started = time.perf_counter()
            submitted = await stub.Submit(
                dispatcher_pb2.SubmitRequest(image=photos[index]), timeout=120
            )
            submit_latencies.append(time.perf_counter() - started)
            job_ids.append(submitted.job.id)
            if submitted.job.state == job_pb2.JOB_STATE_SUCCEEDED:
                raise SystemExit("a distinct photo was answered from the cache")
            watch = stub.WatchJob(
                dispatcher_pb2.WatchJobRequest(job_id=submitted.job.id), timeout=120
            )
            async for update in watch:
                if update.job.state == job_pb2.JOB_STATE_FAILED:
                    raise SystemExit(f"job failed: {update.job.error_message}")

        rate, latencies = await closed_loop(len(photos), concurrency, submit_and_wait)
    return PipelineRun(rate, latencies, submit_latencies, job_ids)


async def classifier_timings(nats_server: NatsServer, job_ids: list[str]) -> dict[str, float]:
    """Medians of what the classifier reported in each job's `succeeded` event."""
    import nats

    from meshkit.broker_layout import JOBS_STREAM, job_subject
    from meshkit.job_events import decode_event

    client = await nats.connect(**nats_server.connect_options())
    try:
        jetstream = client.jetstream()
        timings = []
        for job_id in job_ids:
            message = await jetstream.get_last_msg(JOBS_STREAM, job_subject(job_id, "succeeded"))
            timings.append(decode_event(message.data).succeeded.timings)
    finally:
        await client.close()
    return {
        "queue_wait_p50_ms": round(statistics.median(t.queue_wait_ms for t in timings), 2),
        "preprocess_p50_ms": round(statistics.median(t.preprocess_ms for t in timings), 2),
        "inference_p50_ms": round(statistics.median(t.inference_ms for t in timings), 2),
        "batch_size_p50": statistics.median(t.batch_size for t in timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=REPO_ROOT.parent / "shared/datasets/weather")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--classify-calls", type=int, default=640)
    parser.add_argument("--low-load-jobs", type=int, default=30)
    args = parser.parse_args()

    model_path = args.model or Path(os.environ.get("CLASSIFIER_MODEL_PATH") or SHIPPED_MODEL)
    photos = distinct_photos(args.photos)
    limit = measure_limit(model_path, photos)
    limit_rate = limit["images_per_second"]
    emit({"bench": "limit", "photos": len(photos), **limit})

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        nats_server = NatsServer(
            port=free_port(), monitor_port=free_port(), store_dir=workdir / "nats"
        )
        nats_server.start()
        try:
            with (
                service(
                    "classifier",
                    workdir,
                    nats_server,
                    model_path=str(model_path),
                ) as classifier,
                # Anonymous Submit/WatchJob, as `make up` allows (README "Sign in").
                service(
                    "dispatcher", workdir, nats_server, auth_anonymous_demo="true"
                ) as dispatcher,
            ):
                rate, latencies = asyncio.run(
                    bench_classify(classifier, photos, args.classify_calls, args.concurrency)
                )
                emit(
                    {
                        "bench": "classify",
                        "concurrency": args.concurrency,
                        "calls": args.classify_calls,
                        "images_per_second": round(rate, 1),
                        **latency_figures(latencies),
                        "ratio_to_limit": round(rate / limit_rate, 3),
                    }
                )
                low, pipeline_photos = (
                    photos[: args.low_load_jobs],
                    photos[args.low_load_jobs :],
                )
                run = asyncio.run(bench_pipeline(dispatcher, pipeline_photos, args.concurrency))
                emit(
                    {
                        "bench": "pipeline",
                        "concurrency": args.concurrency,
                        "jobs": len(pipeline_photos),
                        "images_per_second": round(run.images_per_second, 1),
                        **latency_figures(run.latencies),
                        "ratio_to_limit": round(run.images_per_second / limit_rate, 3),
                        "submit_p50_ms": latency_figures(run.submit_latencies)["p50_ms"],
                        **asyncio.run(classifier_timings(nats_server, run.job_ids)),
                    }
                )
                run = asyncio.run(bench_pipeline(dispatcher, low, 1))
                figures = latency_figures(run.latencies)
                emit(
                    {
                        "bench": "pipeline_low_load",
                        "concurrency": 1,
                        "jobs": len(low),
                        **figures,
                        "limit_single_image_p50_ms": limit["single_image_p50_ms"],
                        "added_p50_ms": round(figures["p50_ms"] - limit["single_image_p50_ms"], 2),
                        "submit_p50_ms": latency_figures(run.submit_latencies)["p50_ms"],
                        **asyncio.run(classifier_timings(nats_server, run.job_ids)),
                    }
                )
        finally:
            nats_server.stop()


if __name__ == "__main__":
    main()
