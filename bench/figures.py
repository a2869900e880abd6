"""What `make bench` measured, compared with its goals: pure arithmetic, no I/O.

The goals are issue #15's, stated once here so the printed table and the README cannot
disagree about them. A benchmark prints figures and never fails on timing: `met` is a
word in the table, not an exit status.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tools.proof.report import MIB, percentile, table

AT_LEAST = ">="
AT_MOST = "<="


@dataclass(frozen=True)
class Goal:
    """One figure of the run and the bound it should meet."""

    name: str
    key: tuple[str, str]
    """(section, field) of the figures where the measured value is."""
    comparison: str
    bound: float
    unit: str = "x limit"

    def met(self, value: float | None) -> bool | None:
        """None when the run could not measure the figure."""
        if value is None or math.isnan(value):
            return None
        return value >= self.bound if self.comparison == AT_LEAST else value <= self.bound


GOALS = (
    Goal("Classify, 64 in flight", ("classify", "ratio_to_limit"), AT_LEAST, 0.95),
    Goal(
        "Submit->SUCCEEDED via Envoy, trusted client",
        ("via_envoy_trusted", "ratio_to_limit"),
        AT_LEAST,
        0.8,
    ),
    Goal(
        "low-load p50 over the limit's per-image time",
        ("low_load", "added_p50_ms"),
        AT_MOST,
        10.0,
        "ms",
    ),
)
"""Issue #15's goals. The via-Envoy figure with the shipped per-client limits has no goal:
those limits exist to refuse a single client asking for the whole mesh."""


def ratio(rate: float, limit: float) -> float:
    """`rate` as a fraction of the model's limit, 3 decimals (0 when there is no limit)."""
    return round(rate / limit, 3) if limit > 0 else 0.0


def latency_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p99 in milliseconds (nearest rank: every figure is one that was measured)."""

    def ms(fraction: float) -> float | None:
        value = percentile(seconds, fraction)
        return None if value is None else round(value * 1000, 2)

    return {"p50_ms": ms(0.50), "p99_ms": ms(0.99)}


def per_job(before: Mapping[str, float], after: Mapping[str, float], jobs: int) -> dict[str, float]:
    """What each counter grew by per job between two readings (names in both only)."""
    if jobs <= 0:
        return {}
    return {
        name: round((after[name] - before[name]) / jobs, 6)
        for name in sorted(after)
        if name in before
    }


def figure(figures: Mapping[str, Any], key: tuple[str, str]) -> float | None:
    section = figures.get(key[0]) or {}
    value = section.get(key[1])
    return None if value is None else float(value)


def goal_table(figures: Mapping[str, Any]) -> str:
    """The goals beside the figures, one row each, plus the shipped-defaults figure."""
    rows: list[list[object]] = []
    for goal in GOALS:
        value = figure(figures, goal.key)
        met = goal.met(value)
        rows.append(
            [
                goal.name,
                "-" if value is None else _three_decimals(value),
                f"{goal.comparison} {goal.bound:g} {goal.unit}",
                {True: "met", False: "NOT met", None: "not measured"}[met],
            ]
        )
    shipped = figures.get("via_envoy_shipped_defaults") or {}
    if "error" in shipped:
        rows.append(
            [
                "Submit->SUCCEEDED via Envoy, shipped per-client limits",
                "-",
                "no goal (one client)",
                f"not measured: {str(shipped['error'])[:60]}",
            ]
        )
    elif shipped:
        refused = sum((shipped.get("refused") or {}).values())
        rows.append(
            [
                "Submit->SUCCEEDED via Envoy, shipped per-client limits",
                _three_decimals(float(shipped.get("ratio_to_limit", 0))),
                "no goal (one client)",
                f"{refused} calls refused",
            ]
        )
    return table(["figure", "measured", "goal", ""], rows)


def _three_decimals(value: float) -> str:
    """0.48 rather than 0.480: as measured, without trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def rss_table(peaks: Mapping[str, int]) -> str:
    """Peak RSS per component and the whole mesh's (the sum of the peaks: an upper bound)."""
    rows: list[list[object]] = [
        [name, round(peak / MIB, 1)] for name, peak in sorted(peaks.items())
    ]
    rows.append(["whole mesh (sum of peaks)", round(sum(peaks.values()) / MIB, 1)])
    return table(["process group", "peak RSS MiB"], rows)


def peak_total(samples: Mapping[str, list[tuple[float, int]]]) -> int:
    """The highest sum over components at one sampling instant (the whole mesh's peak)."""
    totals: Counter[float] = Counter()
    for series in samples.values():
        for elapsed, value in series:
            totals[elapsed] += value
    return max(totals.values(), default=0)
