"""`make bench`: how close the whole mesh, entered through Envoy, gets to the model's limit.

Prints a table of figures with issue #15's goals beside them and writes every figure to
`bench/figures.json` (what `make capacity` reads). It never fails on timing. In one run:
- `limit`: the shipped model's best single-process throughput from photo bytes (decode +
  preprocess in two threads + one forward pass per batch, best batch size) and its
  per-image latency at batch 1, measured in this process before the mesh starts;
- `classify`: the classifier's own Classify RPC, `--concurrency` calls in flight;
- `via_envoy_trusted`: Submit then a WatchJob stream to SUCCEEDED, per job as the UI does,
  `--concurrency` jobs in flight through the real gateway as a trusted client
  (`GATEWAY_TRUSTED_CLIENTS`: only the gateway's totals apply), every photo distinct so
  the result cache never answers; CPU seconds, NATS messages and bytes, PostgreSQL writes
  and bytes per job are read around this phase;
- `low_load`: the same one job at a time: what the hops add to the limit's per-image time;
- `via_envoy_shipped_defaults`: the same 64 in flight from one address through a second
  Envoy with the shipped per-client limits (no trusted client): the refusals are counted,
  they are that configuration working.
The whole local mesh (NATS, PostgreSQL, the three services, Envoy) is `tools.proof`'s, the
one `make load` starts: devmesh's launchers on free ports; its RSS is sampled throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.figures import goal_table, latency_ms, peak_total, per_job, ratio, rss_table
from devmesh.envoy import EnvoyProxy
from devmesh.ports import LOOPBACK, free_port
from tools.proof.gateway import NativeTransport
from tools.proof.jobs import JobsClient, is_terminal, state_name
from tools.proof.mesh import LocalMesh
from tools.proof.photos import DEFAULT_DATASET, DistinctPhotos, dataset_jpegs
from tools.proof.processes import MemorySeries, group_cpu_seconds, sample_memory
from weather.v1 import classifier_pb2, classifier_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO_ROOT / "services" / "classifier" / "weather_classifier.keras"
FIGURES_PATH = REPO_ROOT / "bench" / "figures.json"
REFUSED = "RESOURCE_EXHAUSTED"
RETRY_PAUSE_SECONDS = 0.5
"""A refused client waits this long before it asks again (as `make load`'s clients do)."""
JOB_DEADLINE_SECONDS = 120.0
MAX_SUBMIT_ATTEMPTS = 240
"""A photo refused this often (two minutes of retries) is given up, and counted."""
STREAM_BYTES = "stream_bytes."
STATS_SETTLE_SECONDS = 11.0
"""PostgreSQL backends report their table statistics at most every 10 s when idle."""


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


async def closed_loop(
    calls: int, concurrency: int, call: Callable[[int, int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `calls` calls, `concurrency` workers each with one in flight; `call(worker,
    index)`. Returns (calls per second, latencies)."""
    latencies: list[float] = []
    next_index = 0

    async def worker(number: int) -> None:
        nonlocal next_index
        while next_index < calls:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await call(number, index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(number) for number in range(concurrency)))
    return calls / (time.perf_counter() - started), latencies


async def bench_classify(
    address: str, photos: list[bytes], calls: int, concurrency: int
) -> tuple[float, list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def classify(_: int, index: int) -> None:
            image = photos[index % len(photos)]
            await stub.Classify(classifier_pb2.ClassifyRequest(image=image), timeout=120)

        await closed_loop(concurrency, concurrency, classify)  # warm-up
        return await closed_loop(calls, concurrency, classify)


@dataclass
class GatewayRun:
    """Jobs through the gateway: finished ones, their latencies, what was refused."""

    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    submit_latencies: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def figures(self, limit_rate: float, concurrency: int) -> dict[str, Any]:
        rate = self.succeeded / self.elapsed if self.elapsed else 0.0
        return {
            "concurrency": concurrency,
            "jobs": self.jobs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "unfinished": self.unfinished,
            "seconds": round(self.elapsed, 2),
            "images_per_second": round(rate, 1),
            **latency_ms(self.latencies),
            "submit_p50_ms": latency_ms(self.submit_latencies)["p50_ms"],
            "ratio_to_limit": ratio(rate, limit_rate),
            "refused": dict(sorted(self.refused.items())),
            "errors": dict(sorted(self.errors.items())),
        }


async def through_gateway(
    gateway: str,
    photos: DistinctPhotos,
    concurrency: int,
    *,
    jobs: int | None = None,
    seconds: float | None = None,
) -> GatewayRun:
    """`concurrency` clients, each on its own HTTP/2 connection, submit a distinct photo and
    watch it to the end, `jobs` in all or for `seconds`. A refused call is counted and
    retried after a pause, never fatal."""
    run = GatewayRun()
    clients = [JobsClient(NativeTransport(gateway)) for _ in range(concurrency)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    submit_until = started + seconds if seconds is not None else float("inf")
    remaining = jobs if jobs is not None else -1

    def another() -> bool:
        nonlocal remaining
        if loop.time() >= submit_until or remaining == 0:
            return False
        remaining -= 1
        return True

    async def one_job(client: JobsClient) -> None:
        photo = next(photos)
        begun = time.perf_counter()
        outcome, job = await client.submit(photo)
        attempts = 1
        while job is None:
            (run.refused if outcome.code == REFUSED else run.errors)[f"Submit {outcome.code}"] += 1
            if loop.time() >= submit_until or attempts >= MAX_SUBMIT_ATTEMPTS:
                return
            attempts += 1
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            outcome, job = await client.submit(photo)
        run.submit_latencies.append(time.perf_counter() - begun)
        run.jobs += 1
        finish_by = loop.time() + JOB_DEADLINE_SECONDS
        while not is_terminal(job) and loop.time() < finish_by:
            watched, states = await client.watch(job.id, deadline=finish_by - loop.time())
            if not watched.ok:
                counter = run.refused if watched.code == REFUSED else run.errors
                counter[f"WatchJob {watched.code}"] += 1
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            job = states[-1] if states else job
        if not is_terminal(job):
            run.unfinished += 1
            return
        run.latencies.append(time.perf_counter() - begun)
        if state_name(job) == "JOB_STATE_SUCCEEDED":
            run.succeeded += 1
        else:
            run.failed += 1
            run.errors[f"FAILED {job.error_message[:60]}"] += 1

    async def client_loop(client: JobsClient) -> None:
        while another():
            await one_job(client)

    try:
        await asyncio.gather(*(client_loop(client) for client in clients))
    finally:
        run.elapsed = loop.time() - started
        await asyncio.gather(*(client.transport.close() for client in clients))
    return run


def nats_totals(monitor_port: int) -> dict[str, float]:
    """Messages and bytes stored in all of JetStream, and bytes per stream
    (`stream_bytes.<name>`): the job stream, the photos' object store, the buckets."""
    connection = http.client.HTTPConnection(LOOPBACK, monitor_port, timeout=5)
    try:
        connection.request("GET", "/jsz?accounts=true&streams=true")
        jsz = json.load(connection.getresponse())
    finally:
        connection.close()
    totals = {"nats_messages": float(jsz["messages"]), "nats_bytes": float(jsz["bytes"])}
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            totals[f"{STREAM_BYTES}{stream['name']}"] = float(stream["state"]["bytes"])
    return totals


def postgres_totals(dsn: str) -> dict[str, float]:
    """Rows written (inserted, updated, deleted) and bytes of reporting's database."""
    import psycopg

    with psycopg.connect(dsn) as connection:
        writes = connection.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        ).fetchone()
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return {
        "postgres_writes": float(writes[0] if writes else 0),
        "postgres_bytes": float(size[0] if size else 0),
    }


async def storage_totals(mesh: LocalMesh) -> dict[str, float]:
    dsn = mesh.postgres.dsn_for(mesh.postgres.database)
    return {
        **await asyncio.to_thread(nats_totals, mesh.settings.nats_monitor_port),
        **await asyncio.to_thread(postgres_totals, dsn),
    }


async def settled_storage_totals(mesh: LocalMesh) -> dict[str, float]:
    """Storage counters once reporting has written what it was sent and PostgreSQL has
    published its statistics (a reading that no longer moves)."""
    await asyncio.sleep(STATS_SETTLE_SECONDS)
    previous = await storage_totals(mesh)
    for _ in range(10):
        await asyncio.sleep(2.0)
        current = await storage_totals(mesh)
        if current == previous:
            break
        previous = current
    return previous


def shipped_defaults_gateway(mesh: LocalMesh) -> EnvoyProxy:
    """A second Envoy in front of the same services, with the shipped per-client limits and
    no trusted client: what one address meets at the gateway as shipped."""
    config = dataclasses.replace(
        mesh.settings.gateway(),
        listener_port=free_port(),
        admin_port=free_port(),
        trusted_clients=(),
    )
    directory = mesh.work_dir / "envoy-shipped-defaults"
    return EnvoyProxy(
        config, config_path=directory / "envoy.yaml", log_path=mesh.log_dir / "envoy-shipped.log"
    )


def emit(section: str, record: Mapping[str, Any]) -> None:
    print(json.dumps({"bench": section, **record}), flush=True)


async def run_mesh_phases(
    arguments: argparse.Namespace,
    photos: list[bytes],
    limit: Mapping[str, float],
    figures: dict[str, Any],
) -> None:
    limit_rate = limit["images_per_second"]
    concurrency = arguments.concurrency
    tag = uuid.uuid4().hex[:8]
    mesh = LocalMesh(keep=arguments.keep)
    memory = MemorySeries()
    stop_sampling = asyncio.Event()
    try:
        await mesh.start(arguments.ready_timeout)
        sampler = asyncio.create_task(sample_memory(mesh.leaders, memory, stop_sampling, 0.5))
        # Classify has no cache: the dataset's photos as they are.
        rate, latencies = await bench_classify(
            f"{LOOPBACK}:{mesh.settings.classifier_grpc_port}",
            photos,
            arguments.classify_calls,
            concurrency,
        )
        figures["classify"] = {
            "concurrency": concurrency,
            "calls": arguments.classify_calls,
            "images_per_second": round(rate, 1),
            **latency_ms(latencies),
            "ratio_to_limit": ratio(rate, limit_rate),
        }
        emit("classify", figures["classify"])

        gateway = mesh.endpoints.gateway
        # Warm-up: first connections, the JetStream consumers' first pulls, PostgreSQL's
        # first inserts; not counted.
        await through_gateway(gateway, DistinctPhotos(arguments.jpegs, f"warm-{tag}"), 8, jobs=32)
        storage_before = await settled_storage_totals(mesh)
        cpu_before = group_cpu_seconds(mesh.leaders())
        client_before = time.process_time()
        run = await through_gateway(
            gateway,
            DistinctPhotos(arguments.jpegs, f"trusted-{tag}"),
            concurrency,
            jobs=arguments.jobs,
        )
        client_cpu = time.process_time() - client_before
        figures["via_envoy_trusted"] = run.figures(limit_rate, concurrency)
        emit("via_envoy_trusted", figures["via_envoy_trusted"])
        # After reporting has stored what the run sent it (a few idle seconds included).
        storage_after = await settled_storage_totals(mesh)
        cpu_after = group_cpu_seconds(mesh.leaders())
        storage = per_job(storage_before, storage_after, run.jobs)
        figures["per_job"] = {
            "jobs": run.jobs,
            "cpu_seconds": per_job(cpu_before, cpu_after, run.jobs),
            # The 64 clients run in this process, on the same cores: not the mesh's cost.
            "client_cpu_seconds": round(client_cpu / max(1, run.jobs), 6),
            "nats_stream_bytes": {
                name.removeprefix(STREAM_BYTES): value
                for name, value in storage.items()
                if name.startswith(STREAM_BYTES)
            },
            **{name: value for name, value in storage.items() if "." not in name},
        }
        emit("per_job", figures["per_job"])

        low = await through_gateway(
            gateway, DistinctPhotos(arguments.jpegs, f"low-{tag}"), 1, jobs=arguments.low_jobs
        )
        low_figures = latency_ms(low.latencies)
        p50 = low_figures["p50_ms"] or 0.0
        figures["low_load"] = {
            "jobs": low.jobs,
            **low_figures,
            "submit_p50_ms": latency_ms(low.submit_latencies)["p50_ms"],
            "limit_single_image_p50_ms": limit["single_image_p50_ms"],
            "added_p50_ms": round(p50 - limit["single_image_p50_ms"], 2),
        }
        emit("low_load", figures["low_load"])
        stop_sampling.set()
        await sampler
        figures["rss_peak_bytes"] = memory.peaks()
        figures["rss_peak_bytes_whole_mesh"] = peak_total(memory.samples)

        shipped = shipped_defaults_gateway(mesh)
        try:
            await asyncio.to_thread(shipped.start)
            shipped_run = await through_gateway(
                f"{LOOPBACK}:{shipped.config.listener_port}",
                DistinctPhotos(arguments.jpegs, f"shipped-{tag}"),
                concurrency,
                seconds=arguments.shipped_seconds,
            )
            figures["via_envoy_shipped_defaults"] = shipped_run.figures(limit_rate, concurrency)
        except Exception as error:  # a figure missing, not a bench lost
            figures["via_envoy_shipped_defaults"] = {"error": f"{type(error).__name__}: {error}"}
        finally:
            await asyncio.to_thread(shipped.stop)
        emit("via_envoy_shipped_defaults", figures["via_envoy_shipped_defaults"])
    finally:
        stop_sampling.set()
        await asyncio.to_thread(mesh.close)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": len(os.sched_getaffinity(0)), "cpu": model}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--photos", type=Path, default=DEFAULT_DATASET, help="the photo dataset")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--classify-calls", type=int, default=640)
    parser.add_argument("--jobs", type=int, default=800, help="jobs of the via-Envoy phase")
    parser.add_argument("--low-jobs", type=int, default=30, help="jobs of the low-load phase")
    parser.add_argument(
        "--shipped-seconds", type=float, default=20.0, help="length of the shipped-limits phase"
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--figures", type=Path, default=FIGURES_PATH, help="JSON written here")
    parser.add_argument("--keep", action="store_true", help="keep the mesh's scratch dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    arguments.jpegs = dataset_jpegs(arguments.photos)
    model_path = arguments.model or Path(os.environ.get("CLASSIFIER_MODEL_PATH") or SHIPPED_MODEL)
    photos = [path.read_bytes() for path in arguments.jpegs]
    limit = measure_limit(model_path, photos)
    figures: dict[str, Any] = {
        "machine": machine(),
        "limit": {"photos": len(photos), **limit},
    }
    emit("limit", figures["limit"])
    asyncio.run(run_mesh_phases(arguments, photos, limit, figures))
    arguments.figures.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print()
    print(goal_table(figures))
    print()
    print(rss_table(figures["rss_peak_bytes"]))
    print(f"whole mesh at its peak instant: {figures['rss_peak_bytes_whole_mesh'] / 2**20:.1f} MiB")
    print(f"\nfigures: {arguments.figures} (make capacity reads them)")


if __name__ == "__main__":
    main()
