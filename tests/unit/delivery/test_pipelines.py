"""bitbucket-pipelines.yml is a valid Bitbucket Pipelines file that only runs real make targets.

The schema is the Bitbucket Pipelines JSON schema (SchemaStore, MIT, © Atlassian) that the
check-jsonschema package vendors as `vendor.bitbucket-pipelines`; no network is needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[3]
PIPELINES = ROOT / "bitbucket-pipelines.yml"
BUILTIN_SCHEMA = "vendor.bitbucket-pipelines"

# What DESIGN.md's "Delivery" section asks of both the pull-request and the main pipeline.
REQUIRED_TARGETS = {
    "lint",
    "typecheck",
    "sast",
    "proto-check",
    "test-unit",
    "test-integration",
    "lint-docker",
    "ui-typecheck",
    "ui-gen-check",
    "test-e2e",
}
HEAVY_TARGETS = {"test-unit", "test-integration", "test-e2e"}
# Caches Bitbucket predefines; any other cache a step names must be under definitions.caches.
PREDEFINED_CACHES = {
    "docker",
    "composer",
    "dotnetcore",
    "gradle",
    "ivy2",
    "maven",
    "node",
    "pip",
    "sbt",
}
MAKE_LINE = re.compile(r"^make ([A-Za-z0-9_-]+)$")


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def dump(document: Any, path: Path) -> Path:
    # JSON is YAML: check-jsonschema reads it the same way, anchors already resolved.
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", BUILTIN_SCHEMA, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    loaded: dict[str, Any] = json.loads(
        (vendor / "bitbucket-pipelines.json").read_text(encoding="utf-8")
    )
    return loaded


def properties(definition: dict[str, Any], definitions: dict[str, Any]) -> set[str]:
    """Every key a schema definition documents, following $ref and allOf."""
    if "$ref" in definition:
        return properties(definitions[definition["$ref"].rsplit("/", 1)[1]], definitions)
    keys = set(definition.get("properties", {}))
    for part in definition.get("allOf", []):
        keys |= properties(part, definitions)
    return keys


def steps_of(items: list[Any]) -> Iterator[dict[str, Any]]:
    """The steps of a pipeline, through parallel groups (plain or with `steps:`)."""
    for item in items:
        if "step" in item:
            yield item["step"]
        elif "parallel" in item:
            group = item["parallel"]
            yield from steps_of(group["steps"] if isinstance(group, dict) else group)


def all_steps(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from steps_of(document.get("definitions", {}).get("steps", []))
    for pipeline in pipelines(document).values():
        yield from steps_of(pipeline)


def pipelines(document: dict[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for kind, value in document["pipelines"].items():
        if kind == "default":
            found["default"] = value
        else:
            for selector, pipeline in value.items():
                found[f"{kind}:{selector}"] = pipeline
    return found


def undocumented_keys(document: dict[str, Any]) -> list[str]:
    """Keys the schema does not name: it allows extra keys, so a typo would pass it silently."""
    definitions = schema()["definitions"]
    top = properties(definitions["pipelines_configuration"], definitions)
    # `definitions.steps` is Bitbucket's documented home for YAML-anchored steps.
    definition_keys = properties(
        definitions["pipelines_configuration"]["properties"]["definitions"], definitions
    ) | {"steps"}
    step_keys = properties(definitions["step"], definitions)
    cache_keys = properties(definitions["cache_expanded"], definitions)
    problems = [f"top level: {key}" for key in document if key not in top]
    problems += [
        f"definitions: {key}"
        for key in document.get("definitions", {})
        if key not in definition_keys
    ]
    for name, cache in document.get("definitions", {}).get("caches", {}).items():
        if isinstance(cache, dict):
            problems += [f"cache {name}: {key}" for key in cache if key not in cache_keys]
    for step in all_steps(document):
        problems += [f"step {step.get('name')}: {key}" for key in step if key not in step_keys]
    return problems


def make_targets(step: dict[str, Any]) -> list[str]:
    return [match.group(1) for line in step["script"] if (match := MAKE_LINE.match(line.strip()))]


def is_make_target(target: str) -> bool:
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return dry_run.returncode == 0


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = load(PIPELINES)
    return loaded


def test_pipeline_file_is_valid_against_the_bitbucket_schema() -> None:
    result = check_jsonschema(PIPELINES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_invalid_step(document: dict[str, Any], tmp_path: Path) -> None:
    broken = load(PIPELINES)
    broken["definitions"]["steps"][0]["step"]["size"] = "3x"
    broken["pipelines"]["branches"]["main"][0]["parallel"]["steps"][0]["step"]["max-time"] = 0
    result = check_jsonschema(dump(broken, tmp_path / "bitbucket-pipelines.yml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3x" in result.stdout + result.stderr


def test_every_key_is_one_the_schema_documents(document: dict[str, Any]) -> None:
    assert undocumented_keys(document) == []


def test_a_misspelt_key_is_reported(document: dict[str, Any]) -> None:
    misspelt = load(PIPELINES)
    misspelt["definitions"]["steps"][0]["step"]["max_time"] = 10
    misspelt["definitions"]["caches"]["venv"]["keys"] = {"files": ["pyproject.toml"]}
    problems = undocumented_keys(misspelt)
    assert any(problem.endswith(": max_time") for problem in problems), problems
    assert "cache venv: keys" in problems


def test_every_step_runs_make_targets_only(document: dict[str, Any]) -> None:
    for step in all_steps(document):
        lines = [line.strip() for line in step["script"]]
        assert lines, f"step {step['name']!r} runs nothing"
        assert all(MAKE_LINE.match(line) for line in lines), (
            f"step {step['name']!r} runs something a developer cannot run with make: {lines}"
        )


def test_every_make_target_called_exists(document: dict[str, Any]) -> None:
    called = {target for step in all_steps(document) for target in make_targets(step)}
    assert called, "the pipelines call no make target"
    missing = sorted(target for target in called if not is_make_target(target))
    assert missing == [], f"make has no such targets: {missing}"


def test_an_unknown_make_target_is_detected() -> None:
    assert not is_make_target("no-such-target-in-weather-mesh")


@pytest.mark.parametrize("pipeline", ["pull-requests:**", "branches:main"])
def test_pipeline_runs_every_check_in_parallel(document: dict[str, Any], pipeline: str) -> None:
    items = pipelines(document)[pipeline]
    parallel = [item for item in items if "parallel" in item]
    assert parallel, f"{pipeline} has no parallel group"
    in_parallel = {target for step in steps_of(parallel) for target in make_targets(step)}
    missing = REQUIRED_TARGETS - in_parallel
    assert not missing, f"{pipeline} does not run {sorted(missing)} in parallel"


def test_steps_use_the_caches_and_limits(document: dict[str, Any]) -> None:
    defined = set(document["definitions"]["caches"])
    for step in all_steps(document):
        caches = set(step.get("caches", []))
        assert {"pip", "venv"} <= caches, f"step {step['name']!r} caches {sorted(caches)}"
        unknown = caches - defined - PREDEFINED_CACHES
        assert not unknown, f"step {step['name']!r} uses undefined caches {sorted(unknown)}"
        assert isinstance(step.get("max-time"), int), f"step {step['name']!r} has no max-time"
        if HEAVY_TARGETS & set(make_targets(step)):
            assert step.get("size") == "2x", f"heavy step {step['name']!r} is not size 2x"


def test_venv_cache_is_keyed_on_pyproject(document: dict[str, Any]) -> None:
    venv = document["definitions"]["caches"]["venv"]
    assert venv["path"] == ".venv"
    assert venv["key"]["files"] == ["pyproject.toml", "constraints.txt"]
    assert (ROOT / "pyproject.toml").is_file()


def test_ci_python_is_the_one_the_project_targets(document: dict[str, Any]) -> None:
    image, _, tag = document["image"].partition(":")
    with (ROOT / "pyproject.toml").open("rb") as pyproject:
        project = tomllib.load(pyproject)
    assert image == "python"
    assert Version(tag) in SpecifierSet(project["project"]["requires-python"])
    assert tag == project["tool"]["mypy"]["python_version"], "mypy checks another Python than CI"
    # The service images run the same minor version as CI tests.
    for dockerfile in sorted(ROOT.glob("services/*/Dockerfile")):
        bases = re.findall(r"^FROM python:(\d+\.\d+)\.", dockerfile.read_text("utf-8"), re.M)
        assert bases, f"{dockerfile} is not on a python:X.Y.Z image"
        assert set(bases) == {tag}, f"{dockerfile} runs Python {bases}, CI {tag}"
