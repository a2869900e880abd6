"""The alert rules and the Grafana dashboard only use metrics the services really export.

The exported names come from the services' own wiring (`build` of each service, plus the
RPC interceptor the bootstrap adds), so a renamed metric fails here instead of leaving an
alert that can never fire or a panel that stays empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from meshkit.rpc_metrics import RpcMetricsInterceptor
from meshkit.server import ServiceDefinition
from services.classifier.app import build as build_classifier
from services.classifier.settings import ClassifierSettings
from services.dispatcher.app import build as build_dispatcher
from services.dispatcher.settings import DispatcherSettings
from services.reporting.app import build as build_reporting
from services.reporting.settings import ReportingSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
ALERTS = REPO_ROOT / "observability" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = REPO_ROOT / "observability" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO_ROOT / "observability" / "grafana" / "weather-mesh.json"

# What prometheus-client appends to a family's name in the exposition, by type.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "untyped": ("",),
}

PROMQL_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
        "group_right", "bool", "offset", "atan2",
        "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
        "quantile", "count_values", "group", "limitk", "limit_ratio",
    }
)  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"\{[^}]*\}")
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
LABEL_VALUES = re.compile(r"label_values\((.+),\s*\w+\)")
IDENTIFIER = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names and
    label values removed)."""
    bare = STRING.sub('""', expression)
    bare = MATCHERS.sub("", bare)
    bare = RANGE.sub("", bare)
    bare = GROUPING.sub("", bare)
    return {name for name in IDENTIFIER.findall(bare) if name not in PROMQL_KEYWORDS}


def test_metric_names_are_read_from_promql() -> None:
    expression = (
        'sum by (job, le) (rate(weather_rpc_duration_seconds_bucket{code!="OK", method=~"a.*"}'
        "[$__rate_interval])) / on (job) group_left weather_serving > 0.5 and 1e9 > bool 2"
    )
    assert metric_names(expression) == {"weather_rpc_duration_seconds_bucket", "weather_serving"}


def _registries() -> Iterator[tuple[str, CollectorRegistry]]:
    specs: list[ServiceDefinition] = [
        build_dispatcher(DispatcherSettings()),
        build_classifier(ClassifierSettings()),
        build_reporting(ReportingSettings()),
    ]
    for spec in specs:
        RpcMetricsInterceptor(spec.metrics.registry)  # as the bootstrap adds it
        yield spec.name, spec.metrics.registry


@pytest.fixture
async def exported() -> dict[str, set[str]]:
    """Sample names each service exposes, from its real wiring (async: pools and events
    are made inside `build`)."""
    names: dict[str, set[str]] = {}
    for service, registry in _registries():
        names[service] = {
            family.name + suffix
            for family in registry.collect()
            for suffix in SAMPLE_SUFFIXES[family.type]
        }
    return names


def _alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def _panel_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions: dict[str, str] = {}
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expressions[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<selector>, <label>): only the selector is PromQL.
            selector = LABEL_VALUES.fullmatch(variable["definition"])
            assert selector is not None, variable["definition"]
            expressions[f"variable {variable['name']}"] = selector.group(1)
    return expressions


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their own panels


def test_alert_rules_are_well_formed() -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_dashboard_panels_have_unique_ids_and_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = list(_panels(dashboard["panels"]))
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel.get("targets") for panel in panels)


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_used_is_exported_by_a_service(
    source: str, exported: dict[str, set[str]]
) -> None:
    expressions = _alert_expressions() if source == "alerts" else _panel_expressions()
    all_exported = set().union(*exported.values())
    unknown = {
        where: sorted(metric_names(expression) - all_exported)
        for where, expression in expressions.items()
        if metric_names(expression) - all_exported
    }
    assert not unknown, f"metrics no service exports: {unknown}"
    assert all(metric_names(expression) for expression in expressions.values())


def test_the_dashboard_shows_what_the_issue_asks_for(exported: dict[str, set[str]]) -> None:
    used = set().union(*(metric_names(e) for e in _panel_expressions().values()))
    for wanted in (
        "weather_rpc_duration_seconds_bucket",
        "weather_classifier_batch_size_bucket",
        "weather_classifier_model_seconds_bucket",
        "weather_queue_pending_messages",
        "weather_classifier_jobs_total",
        "weather_reporting_events_total",
        "weather_dispatcher_cache_lookups_total",
    ):
        assert wanted in used, wanted
    assert "weather_dispatcher_cache_lookups_total" in exported["dispatcher"]
    assert "weather_queue_pending_messages" in exported["classifier"] & exported["reporting"]


def test_the_scrape_config_loads_the_rules_and_names_jobs_after_services(
    exported: dict[str, set[str]],
) -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert [SCRAPE_CONFIG.parent / path for path in config["rule_files"]] == [ALERTS]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert set(exported) | {"envoy"} == jobs
