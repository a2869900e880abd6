"""`make capacity`: CAPACITY.md from the figures `make bench` measured (bench/figures.json).

Deterministic: the same figures file and the same settings give the same bytes, so a unit
test can hold the committed CAPACITY.md to what this makes from the committed figures.
Every per-job figure is measured; what is assumed (headroom, the size of one node, one
classifier replica's cores) is stated once below and printed in the document.

The model: each component's demand at a rate R is R x (1 + HEADROOM) x what one job cost it
in the bench (CPU seconds read from /proc around the via-Envoy phase). Components that scale
out (classifier, dispatcher, reporting, Envoy) get replicas; the two that hold state (the
NATS stream leader, the PostgreSQL primary) are one process each here, so what they need
is compared with one node. Storage is the bytes one job leaves, for the retention period.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshkit.broker_layout import (
    IMAGES_STREAM,
    JOBS_STREAM,
    RESULTS_BUCKET,
    BrokerSettings,
)
from tools.proof.report import MIB

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIGURES = REPO_ROOT / "bench" / "figures.json"
DEFAULT_OUTPUT = REPO_ROOT / "CAPACITY.md"
RATES = (10, 100, 1000)
HEADROOM = 0.5
"""Every component is sized for 1.5x the target rate: room for bursts, a lost replica and
a retry storm without queueing."""
NODE_CORES = 8
NODE_MEMORY_GIB = 32
"""One node, the unit a single stateful process (NATS stream leader, PostgreSQL primary)
cannot outgrow without changing how it is deployed."""
CLASSIFIER_REPLICA_CORES = 2
"""A classifier replica as the bench ran it: one process on this many cores (its batcher,
decode threads and TensorFlow's intra-op threads share them)."""
STATEFUL_WARNING = 0.5
"""Past half a node, the next step up will not fit: time to change the layout."""
SCALED_OUT = ("classifier", "dispatcher", "reporting", "envoy")
STATEFUL = ("nats", "postgres")
GIB = 1024 * MIB
SECONDS_PER_DAY = 86_400
VOLUME_WARNING_BYTES = 4 * 1024 * GIB
"""Past this, one server's volume is the wrong place for the photos."""

NEXT_STEP = {
    "classifier": (
        "add classifier replicas (KEDA scales them on queue lag); per core only a cheaper "
        "model helps (`make bench-model`: TF Lite is not faster at the batcher's sizes)"
    ),
    "dispatcher": "add dispatcher replicas (stateless; each is one event loop, one core)",
    "reporting": (
        "add reporting replicas (they share the durable consumer); batch inserts per ack"
    ),
    "envoy": "add gateway replicas or raise Envoy's --concurrency (worker threads)",
    "nats": (
        "run NATS as a 3-node cluster with the job stream split by subject (one leader per "
        "partition), and the photos in an external object store (they are nearly all of "
        "NATS's bytes)"
    ),
    "postgres": (
        "batch reporting's inserts, move reads to a replica (CloudNativePG), then "
        "partition `events` by time so retention drops partitions instead of deleting rows"
    ),
    "storage": (
        "shorten `<SERVICE>_RETENTION_SECONDS` (all services alike), or keep the photos in "
        "an external object store with its own lifecycle"
    ),
}


@dataclass(frozen=True)
class Measured:
    """The figures the model uses, per job unless named otherwise."""

    classifier_photos_per_second: float
    """One classifier replica's Classify throughput at 64 in flight, on `cores` cores."""
    cores: int
    cpu_seconds: Mapping[str, float]
    nats_messages: float
    nats_bytes: float
    nats_stream_bytes: Mapping[str, float]
    postgres_writes: float
    postgres_bytes: float
    rss_bytes: Mapping[str, int]
    limit_photos_per_second: float
    via_envoy_photos_per_second: float
    cpu: str

    @classmethod
    def from_figures(cls, figures: Mapping[str, Any]) -> Measured:
        per_job = figures["per_job"]
        return cls(
            classifier_photos_per_second=float(figures["classify"]["images_per_second"]),
            cores=int(figures["machine"]["cores"]),
            cpu_seconds={name: float(value) for name, value in per_job["cpu_seconds"].items()},
            nats_messages=float(per_job["nats_messages"]),
            nats_bytes=float(per_job["nats_bytes"]),
            nats_stream_bytes={
                name: float(value) for name, value in per_job["nats_stream_bytes"].items()
            },
            postgres_writes=float(per_job["postgres_writes"]),
            postgres_bytes=float(per_job["postgres_bytes"]),
            rss_bytes={name: int(value) for name, value in figures["rss_peak_bytes"].items()},
            limit_photos_per_second=float(figures["limit"]["images_per_second"]),
            via_envoy_photos_per_second=float(figures["via_envoy_trusted"]["images_per_second"]),
            cpu=str(figures["machine"]["cpu"]),
        )

    def photos_per_second_per_core(self, component: str) -> float:
        """What one core of `component` serves: 1 / its CPU seconds per job."""
        seconds = self.cpu_seconds.get(component, 0.0)
        return 1.0 / seconds if seconds > 0 else math.inf


@dataclass(frozen=True)
class Need:
    """One component at one rate: instances, cores, memory, and how full its unit is."""

    component: str
    replicas: int
    cores: float
    memory_bytes: int
    load: float
    """Share of what one unit gives: a replica for what scales out, one node for what
    does not. Over 1 for a stateful one means: deploy it differently."""


@dataclass(frozen=True)
class Plan:
    rate: int
    needs: tuple[Need, ...]
    nats_bytes: float
    postgres_bytes: float
    nats_writes_per_second: float
    postgres_writes_per_second: float

    @property
    def cores(self) -> float:
        return sum(need.cores for need in self.needs)

    @property
    def memory_bytes(self) -> int:
        return sum(need.memory_bytes for need in self.needs)

    def first_to_saturate(self) -> Need:
        """What runs out first as the rate grows on a fixed cluster: the component that needs
        the most cores (ties: the first listed)."""
        return max(self.needs, key=lambda need: need.cores)

    def busiest_stateful(self) -> Need:
        """The stateful process nearest to outgrowing one node: where this layout ends."""
        return max(
            (need for need in self.needs if need.component in STATEFUL), key=lambda n: n.load
        )


def plan(measured: Measured, rate: int, headroom: float = HEADROOM) -> Plan:
    """Replicas, cores and memory for `rate` photos/s with `headroom`."""
    sized = rate * (1 + headroom)
    needs = []
    replicas = max(1, math.ceil(sized / measured.classifier_photos_per_second))
    needs.append(
        Need(
            "classifier",
            replicas,
            float(replicas * CLASSIFIER_REPLICA_CORES),
            replicas * measured.rss_bytes.get("classifier", 0),
            sized / measured.classifier_photos_per_second / replicas,
        )
    )
    for component in SCALED_OUT[1:]:
        cores = sized * measured.cpu_seconds.get(component, 0.0)
        replicas = max(1, math.ceil(cores))
        needs.append(
            Need(
                component,
                replicas,
                round(cores, 2),
                replicas * measured.rss_bytes.get(component, 0),
                cores / replicas,
            )
        )
    for component in STATEFUL:
        cores = sized * measured.cpu_seconds.get(component, 0.0)
        needs.append(
            Need(
                component,
                1,
                round(cores, 2),
                measured.rss_bytes.get(component, 0),
                cores / NODE_CORES,
            )
        )
    return Plan(
        rate=rate,
        needs=tuple(needs),
        nats_bytes=sized * measured.nats_bytes,
        postgres_bytes=sized * measured.postgres_bytes,
        nats_writes_per_second=rate * measured.nats_messages,
        postgres_writes_per_second=rate * measured.postgres_writes,
    )


def saturates_first(measured: Measured, rate: int, budgets: tuple[Budget, ...], step: Plan) -> str:
    """With the shipped settings, a storage budget that fills before retention ends comes
    first (it refuses work within hours); then the biggest consumer of cores."""
    first = step.first_to_saturate()
    cpu = (
        f"**{first.component}** CPU ({first.cores:,.1f} of {step.cores:,.1f} cores): "
        f"{NEXT_STEP[first.component]}."
    )
    full = first_full_budget(measured, rate, budgets)
    if full is None:
        return f"- Saturates first: {cpu}"
    budget, seconds = full
    return (
        f"- Saturates first, with the shipped settings: **`{budget.stream}`'s budget** "
        f"(`<SERVICE>_{budget.setting}`), full after {_duration(seconds)}: size the budgets "
        f"below. Then {cpu}"
    )


def _number(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "unbounded"
    return f"{value:,.{digits}f}"


def _bytes(value: float) -> str:
    if value < MIB:
        return f"{value / 1024:,.1f} KiB"
    if value >= 1024 * GIB:
        return f"{value / (1024 * GIB):,.1f} TiB"
    if value >= GIB:
        return f"{value / GIB:,.1f} GiB"
    return f"{value / MIB:,.1f} MiB"


def render(
    figures: Mapping[str, Any],
    retention_seconds: float,
    budgets: tuple[Budget, ...],
    source: str,
) -> str:
    """The whole CAPACITY.md."""
    measured = Measured.from_figures(figures)
    retention_days = retention_seconds / SECONDS_PER_DAY
    lines = [
        "# Capacity",
        "",
        f"Generated by `make capacity` from `{source}` (written by `make bench`); do not edit:",
        "a unit test fails when this file is not what the generator makes from those figures.",
        "",
        f"Measured on {measured.cores} cores ({measured.cpu}), the whole local mesh through "
        f"Envoy at 64 jobs in flight: {_number(measured.via_envoy_photos_per_second)} photos/s "
        f"against the model's own limit of {_number(measured.limit_photos_per_second)} photos/s "
        "on the same machine. The figures are per job and per core, so they carry to other "
        "machines of the same speed; rerun `make bench && make capacity` on the target.",
        "",
        "## Per job, measured",
        "",
        "| component | CPU ms per photo | photos/s per core | photos/s per replica | peak RSS |",
        "|---|---:|---:|---:|---:|",
    ]
    for component in (*SCALED_OUT, *STATEFUL):
        seconds = measured.cpu_seconds.get(component, 0.0)
        per_core = measured.photos_per_second_per_core(component)
        if component == "classifier":
            per_replica = (
                f"{_number(measured.classifier_photos_per_second)} "
                f"(Classify, {measured.cores} cores)"
            )
        elif component in STATEFUL:
            per_replica = "one instance"
        else:
            per_replica = f"{_number(per_core)} (one core)"
        lines.append(
            f"| {component} | {seconds * 1000:.2f} | {_number(per_core)} | {per_replica} "
            f"| {_bytes(measured.rss_bytes.get(component, 0))} |"
        )
    lines += [
        "",
        f"- NATS: {measured.nats_messages:.1f} messages written per job (events, photo "
        f"chunks, result cache), {_bytes(measured.nats_bytes)} stored per job (the photo "
        "dominates).",
        f"- PostgreSQL: {measured.postgres_writes:.1f} rows written per job, "
        f"{measured.postgres_bytes / 1024:.1f} KiB stored per job.",
        "",
        "## Assumptions",
        "",
        f"- Headroom {HEADROOM:.0%}: every component is sized for {1 + HEADROOM:g}x the "
        "target rate.",
        f"- Retention {retention_days:g} days (`<SERVICE>_RETENTION_SECONDS`, its default "
        "in `meshkit/broker_layout.py`): photos and events in NATS, rows in PostgreSQL; "
        "storage below is for one copy (multiply by `BROKER_REPLICAS`).",
        f"- A classifier replica has {CLASSIFIER_REPLICA_CORES} cores; a dispatcher, "
        "reporting or Envoy replica one core; one node is "
        f"{NODE_CORES} cores / {NODE_MEMORY_GIB} GiB, the most a single NATS stream leader "
        "or PostgreSQL primary can use.",
        "- Memory is the measured peak RSS per process, times replicas; NATS and PostgreSQL "
        "memory grows with their caches beyond this.",
        "",
    ]
    for rate in RATES:
        step = plan(measured, rate)
        stateful = step.busiest_stateful()
        storage = step.nats_bytes / (1 + HEADROOM) * retention_seconds
        pg_storage = step.postgres_bytes / (1 + HEADROOM) * retention_seconds
        lines += [
            f"## {rate:,} photos/s",
            "",
            "| component | replicas | cores | memory | load of one unit |",
            "|---|---:|---:|---:|---:|",
        ]
        for need in step.needs:
            unit = "node" if need.component in STATEFUL else "replica"
            lines.append(
                f"| {need.component} | {need.replicas} | {need.cores:,.2f} "
                f"| {_bytes(need.memory_bytes)} | {need.load:.0%} of a {unit} |"
            )
        lines += [
            f"| **total** | | **{step.cores:,.1f}** | **{_bytes(step.memory_bytes)}** | |",
            "",
            f"- Writes: NATS {_number(step.nats_writes_per_second, 0)} messages/s, "
            f"PostgreSQL {_number(step.postgres_writes_per_second, 0)} rows/s.",
            f"- Storage for {retention_days:g} days: NATS {_bytes(storage)}, PostgreSQL "
            f"{_bytes(pg_storage)}; with {HEADROOM:.0%} headroom "
            f"{_bytes(storage * (1 + HEADROOM))} and {_bytes(pg_storage * (1 + HEADROOM))}.",
            saturates_first(measured, rate, budgets, step),
            f"- Nearest to outgrowing one node: **{stateful.component}** at {stateful.load:.0%} "
            "of a node"
            + (
                f". Before it gets there: {NEXT_STEP[stateful.component]}."
                if stateful.load > STATEFUL_WARNING
                else ": fits."
            ),
        ]
        lines += ["", "Storage budgets of the broker at this rate (with the headroom):", ""]
        lines += budget_lines(measured, rate, budgets)
        if storage * (1 + HEADROOM) > VOLUME_WARNING_BYTES:
            lines.append(
                f"- NATS needs over {_bytes(VOLUME_WARNING_BYTES)} of volume: "
                f"{NEXT_STEP['storage']}."
            )
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class Budget:
    """A JetStream stream's shipped size budget and how long what it holds is kept."""

    stream: str
    setting: str
    max_bytes: int
    keep_seconds: float
    when_full: str


def shipped(name: str) -> Any:
    """A broker setting's shipped default, read from the class that defines it (once)."""
    return BrokerSettings.model_fields[name].default


def retention_seconds() -> float:
    return float(shipped("retention_seconds"))


def shipped_budgets() -> tuple[Budget, ...]:
    return (
        Budget(
            IMAGES_STREAM,
            "IMAGES_MAX_BYTES",
            int(shipped("images_max_bytes")),
            float(shipped("retention_seconds")),
            "Submit refuses new photos (RESOURCE_EXHAUSTED)",
        ),
        Budget(
            JOBS_STREAM,
            "JOBS_MAX_BYTES",
            int(shipped("jobs_max_bytes")),
            float(shipped("retention_seconds")),
            "Submit refuses new jobs (RESOURCE_EXHAUSTED)",
        ),
        Budget(
            f"KV_{RESULTS_BUCKET}",
            "RESULTS_MAX_BYTES",
            int(shipped("results_max_bytes")),
            float(shipped("results_ttl_seconds")),
            "new results go uncached",
        ),
    )


def fill_seconds(measured: Measured, rate: int, budget: Budget) -> float:
    """How long the shipped budget lasts at `rate` (inf when it holds `keep_seconds` of it)."""
    per_second = rate * measured.nats_stream_bytes.get(budget.stream, 0.0)
    if per_second <= 0 or per_second * budget.keep_seconds * (1 + HEADROOM) <= budget.max_bytes:
        return math.inf
    return budget.max_bytes / per_second


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def budget_lines(measured: Measured, rate: int, budgets: tuple[Budget, ...]) -> list[str]:
    """Each stream's need at `rate` for as long as it keeps things, against its budget."""
    lines = []
    for budget in budgets:
        per_job = measured.nats_stream_bytes.get(budget.stream, 0.0)
        need = rate * budget.keep_seconds * per_job * (1 + HEADROOM)
        lasts = fill_seconds(measured, rate, budget)
        if math.isinf(lasts):
            lines.append(
                f"- `{budget.stream}` needs {_bytes(need)}: fits the shipped "
                f"`<SERVICE>_{budget.setting}` ({_bytes(budget.max_bytes)})."
            )
            continue
        lines.append(
            f"- `{budget.stream}` needs {_bytes(need)}; the shipped "
            f"`<SERVICE>_{budget.setting}` ({_bytes(budget.max_bytes)}) is full after "
            f"{_duration(lasts)}, then {budget.when_full}: raise it (all services alike) "
            "and the NATS volume to the need."
        )
    return lines


def first_full_budget(
    measured: Measured, rate: int, budgets: tuple[Budget, ...]
) -> tuple[Budget, float] | None:
    """The shipped budget that fills first at `rate`, if one fills before its items expire."""
    lasting = [(budget, fill_seconds(measured, rate, budget)) for budget in budgets]
    finite = [(budget, seconds) for budget, seconds in lasting if not math.isinf(seconds)]
    return min(finite, key=lambda pair: pair[1]) if finite else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--figures", type=Path, default=DEFAULT_FIGURES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    arguments = parser.parse_args(argv)
    figures = json.loads(arguments.figures.read_text())
    source = arguments.figures.resolve()
    shown = source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source
    arguments.out.write_text(render(figures, retention_seconds(), shipped_budgets(), str(shown)))
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
