"""bitbucket-pipelines.yml is a valid Bitbucket Pipelines file whose steps only run real make
targets, and whose promises (checks before delivery, pinned images, bounded steps, gated
secrets, reports kept) hold for every pipeline, read through the same loader the local runner
uses.

The schema is the Bitbucket Pipelines JSON schema (SchemaStore, MIT, (c) Atlassian) that the
check-jsonschema package vendors as `vendor.bitbucket-pipelines`; no network is needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tools.ci.make_database import called_targets, make_targets
from tools.ci.pipeline_file import (
    Pipeline,
    Step,
    all_pipelines,
    load_document,
    pipeline,
    resolve_key,
)

ROOT = Path(__file__).resolve().parents[3]
PIPELINES = ROOT / "bitbucket-pipelines.yml"
BUILTIN_SCHEMA = "vendor.bitbucket-pipelines"
DIGEST_PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
# Targets whose steps deliver: they may only run after every check passed.
DELIVERY_TARGETS = {"push-images", "ci-deploy"}
# Predefined Bitbucket caches; any other name a step uses must be under definitions.caches.
PREDEFINED_CACHES = {"docker", "composer", "dotnetcore", "gradle", "ivy2", "maven", "node", "pip"}


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


def without_secrets() -> dict[str, str]:
    """A bare environment: whatever credentials this machine has, the steps see none."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """make in this checkout, its output captured; `env` None = this process's environment."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
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


def raw_steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step mapping as written (definitions and pipelines, through parallel groups)."""
    found: list[dict[str, Any]] = []

    def walk(items: list[Any]) -> None:
        for item in items:
            if "step" in item:
                found.append(item["step"])
            elif "parallel" in item:
                group = item["parallel"]
                walk(group["steps"] if isinstance(group, dict) else group)

    walk(document.get("definitions", {}).get("steps", []))
    for kind, value in document["pipelines"].items():
        walk(value if kind == "default" else [i for p in value.values() for i in p])
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
    for step in raw_steps(document):
        problems += [f"step {step.get('name')}: {key}" for key in step if key not in step_keys]
    return problems


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document(PIPELINES)


@pytest.fixture(scope="module")
def pipelines(document: dict[str, Any]) -> dict[str, Pipeline]:
    return {found.key: found for found in all_pipelines(document)}


@pytest.fixture(scope="module")
def known_targets() -> set[str]:
    return make_targets(ROOT)


def every_step(pipelines: dict[str, Pipeline]) -> list[Step]:
    return [step for found in pipelines.values() for step in found.steps()]


# --- the file is one Bitbucket accepts ------------------------------------------------------


def test_pipeline_file_is_valid_against_the_bitbucket_schema() -> None:
    result = check_jsonschema(PIPELINES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_invalid_step(document: dict[str, Any], tmp_path: Path) -> None:
    broken = load_document(PIPELINES)
    broken["definitions"]["steps"][0]["step"]["size"] = "3x"
    result = check_jsonschema(dump(broken, tmp_path / "bitbucket-pipelines.yml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3x" in result.stdout + result.stderr


def test_every_key_is_one_the_schema_documents(document: dict[str, Any]) -> None:
    assert undocumented_keys(document) == []


def test_a_misspelt_key_is_reported(document: dict[str, Any]) -> None:
    misspelt = load_document(PIPELINES)
    misspelt["definitions"]["steps"][0]["step"]["max_time"] = 10
    misspelt["definitions"]["caches"]["venv"]["keys"] = {"files": ["pyproject.toml"]}
    problems = undocumented_keys(misspelt)
    assert any(problem.endswith(": max_time") for problem in problems), problems
    assert "cache venv: keys" in problems


# --- every step runs make targets that exist ------------------------------------------------


def test_every_step_runs_make_and_only_targets_make_knows(
    pipelines: dict[str, Pipeline], known_targets: set[str]
) -> None:
    for step in every_step(pipelines):
        for line in step.script:
            assert called_targets(line), f"{step.name!r}: {line!r} runs no make target"
        missing = [target for target in step.make_targets() if target not in known_targets]
        assert missing == [], f"{step.name!r} calls make targets that do not exist: {missing}"


def test_the_target_database_sees_targets_and_not_variables(known_targets: set[str]) -> None:
    assert {"lint", "test-unit", "ci-local", "audit", "ci-deploy"} <= known_targets
    assert "no-such-target-in-weather-mesh" not in known_targets
    assert "BUF_AGAINST" not in known_targets
    assert "TEST_RESULTS" not in known_targets


@pytest.mark.parametrize(
    ("line", "targets"),
    [
        ("make lint", ["lint"]),
        ('make proto-check BUF_AGAINST="$BITBUCKET_PR_DESTINATION_BRANCH"', ["proto-check"]),
        ("make -C ui -j 2 synth ENV=dev", ["synth"]),
        ("make a && make b c", ["a", "b", "c"]),
        ("npm ci", []),
        ("echo make lint", []),
    ],
)
def test_a_script_line_names_the_targets_make_would_build(line: str, targets: list[str]) -> None:
    assert called_targets(line) == targets


# --- what each pipeline promises ------------------------------------------------------------


def test_pull_requests_and_main_run_the_same_checks_in_parallel_first(
    pipelines: dict[str, Pipeline],
) -> None:
    pull_request = pipelines["pull-requests:**"]
    main = pipelines["branches:main"]
    assert pull_request.stages[0].parallel
    assert main.stages[0].parallel
    assert pull_request.stages[0] == main.stages[0], "main skips or adds a check"
    assert len(pull_request.stages) == 1, "a pull request must not deliver anything"


@pytest.mark.parametrize("key", ["branches:main", "custom:rollback"])
def test_production_waits_for_a_person_and_comes_last(
    pipelines: dict[str, Pipeline], key: str
) -> None:
    steps = pipelines[key].steps()
    deployments = [step.deployment for step in steps if step.deployment]
    assert deployments == ["test", "staging", "production"], deployments
    production = next(step for step in steps if step.deployment == "production")
    assert production.manual
    assert steps[-1] is production
    assert not any(step.manual for step in steps if step is not production)


def test_main_delivers_only_after_every_check_passed(pipelines: dict[str, Pipeline]) -> None:
    main = pipelines["branches:main"]
    checks, *later = main.stages
    assert not DELIVERY_TARGETS & {t for step in checks.steps for t in step.make_targets()}
    pushed = [i for i, stage in enumerate(later) if "push-images" in stage.steps[0].make_targets()]
    deployed = [i for i, stage in enumerate(later) if stage.steps[0].deployment]
    assert pushed, "main pushes no images"
    assert deployed, "main deploys nothing"
    assert pushed[0] < min(deployed), "deploys before pushing images"


def test_rollback_asks_for_the_tag_and_builds_nothing(pipelines: dict[str, Pipeline]) -> None:
    rollback = pipelines["custom:rollback"]
    [variable] = rollback.variables
    assert variable.name == "IMAGE_TAG"
    assert variable.default is None
    targets = {target for step in rollback.steps() for target in step.make_targets()}
    assert targets == {"ci-deploy"}


def test_contract_check_compares_against_the_pull_requests_target(
    pipelines: dict[str, Pipeline],
) -> None:
    lines = [line for step in pipelines["pull-requests:**"].steps() for line in step.script]
    contract = [line for line in lines if "proto-check" in called_targets(line)]
    assert contract
    assert all("$BITBUCKET_PR_DESTINATION_BRANCH" in line for line in contract)


def test_every_delivery_step_skips_cleanly_without_credentials(
    pipelines: dict[str, Pipeline],
) -> None:
    delivery = [
        step for step in every_step(pipelines) if DELIVERY_TARGETS & set(step.make_targets())
    ]
    assert delivery, "no step pushes or deploys"
    for step in delivery:
        env = without_secrets()
        if step.deployment:
            env["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] = step.deployment
        for target in step.make_targets():
            result = make(target, env=env)
            assert result.returncode == 0, (step.name, result.stdout + result.stderr)
            assert "SKIPPED:" in result.stdout, result.stdout
            assert "not set" in result.stdout, result.stdout
            if step.deployment:
                assert f"'{step.deployment}' deployment environment" in result.stdout


@pytest.mark.parametrize(
    ("deployment", "cdktf_env"), [("test", "dev"), ("staging", "staging"), ("production", "prod")]
)
def test_each_deployment_environment_deploys_its_cdktf_environment(
    deployment: str, cdktf_env: str
) -> None:
    """With credentials present, the gate hands over to diff then deploy of the mapped ENV
    (dry run: nothing reaches a cloud)."""
    env = without_secrets() | {"BITBUCKET_DEPLOYMENT_ENVIRONMENT": deployment}
    env |= {name: "set-for-the-test" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = make("-n", "ci-deploy", "IMAGE_TAG=abc1234", env=env)
    commands = [line for line in result.stdout.splitlines() if line.startswith("make ")]
    expected = [
        f"make diff ENV={cdktf_env} IMAGE_TAG=abc1234",
        f"make deploy ENV={cdktf_env} IMAGE_TAG=abc1234",
    ]
    # Without mk/deploy.mk (another branch) the dry run stops at `diff`; with it, both show.
    assert commands, result.stdout + result.stderr
    assert commands == expected[: len(commands)], result.stdout + result.stderr


def test_an_unknown_deployment_environment_is_refused() -> None:
    result = make("ci-deploy", "DEPLOYMENT=qa", env=without_secrets())
    assert result.returncode != 0
    assert "DEPLOYMENT='qa' is none of:" in result.stderr


# --- every step is bounded, pinned, cached and keeps its reports ----------------------------


def test_every_step_has_a_time_limit(document: dict[str, Any]) -> None:
    for step in raw_steps(document):
        assert isinstance(step.get("max-time"), int), f"step {step['name']!r} has no max-time"


def test_every_step_image_is_pinned_by_digest(
    document: dict[str, Any], pipelines: dict[str, Pipeline]
) -> None:
    images = [document["image"], *(step.image for step in every_step(pipelines) if step.image)]
    unpinned = [image for image in images if not DIGEST_PINNED.match(image)]
    assert unpinned == []


def test_ci_python_is_the_one_the_project_targets(document: dict[str, Any]) -> None:
    match = re.search(r"python:?(\d+\.\d+)", document["image"])
    assert match, f"{document['image']} names no Python version"
    with (ROOT / "pyproject.toml").open("rb") as pyproject:
        project = tomllib.load(pyproject)
    assert Version(match.group(1)) in SpecifierSet(project["project"]["requires-python"])
    assert match.group(1) == project["tool"]["mypy"]["python_version"]


def test_steps_use_only_caches_that_exist(
    document: dict[str, Any], pipelines: dict[str, Pipeline]
) -> None:
    defined = set(document["definitions"]["caches"]) | PREDEFINED_CACHES
    for step in every_step(pipelines):
        assert {"pip", "venv"} <= set(step.caches), f"{step.name!r} rebuilds the venv each run"
        assert set(step.caches) <= defined, f"{step.name!r} uses an undefined cache"


def test_the_venv_cache_is_rebuilt_when_the_pins_change(document: dict[str, Any]) -> None:
    """The Makefile rebuilds .venv when these change; the cache key must follow the same files."""
    venv = document["definitions"]["caches"]["venv"]
    dry_run = make("-pq", ".venv/.installed")
    rule = re.search(r"^\.venv/\.installed: (.*)$", dry_run.stdout, re.M)
    assert rule, "no .venv/.installed rule"
    assert venv["path"] == ".venv"
    assert sorted(venv["key"]["files"]) == sorted(rule.group(1).split())


def runs_pytest(target: str) -> bool:
    return " -m pytest " in make("-n", target).stdout


def test_steps_that_run_pytest_keep_junit_reports_where_bitbucket_reads_them(
    pipelines: dict[str, Pipeline],
) -> None:
    database = make("-pq").stdout
    checked = 0
    for step in every_step(pipelines):
        for target in step.make_targets():
            if target.startswith("test") and runs_pytest(target):
                checked += 1
                assert f"{target}: PYTEST_ADDOPTS += --junitxml=" in database, target
                assert "test-results/**" in step.artifacts, step.name
    assert checked >= 3


def test_a_pytest_target_writes_its_junit_report_under_test_results(tmp_path: Path) -> None:
    """mk/ci.mk's report settings, with a stand-in test-unit that runs a real pytest."""
    (tmp_path / "test_sample.py").write_text("def test_passes() -> None:\n    pass\n")
    (tmp_path / "Makefile").write_text(
        f"include {ROOT / 'mk' / 'ci.mk'}\n"
        f"test-unit:\n\t{sys.executable} -m pytest -q -p no:cacheprovider test_sample.py\n",
        encoding="utf-8",
    )
    # The outer make's options (its --basetemp above all) must not reach the stand-in run.
    outer = {"PYTEST_ADDOPTS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    result = subprocess.run(
        ["make", "-C", str(tmp_path), "test-unit"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={name: value for name, value in os.environ.items() if name not in outer},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "test-results" / "test-unit.xml").read_text(encoding="utf-8")
    assert 'name="test_passes"' in report


def test_a_pull_request_pipeline_is_chosen_by_branch_glob(document: dict[str, Any]) -> None:
    assert resolve_key(document, "pull-requests", "feature/x") == "pull-requests:**"
    assert resolve_key(document, "main", "whatever") == "branches:main"
    assert pipeline(document, resolve_key(document, "custom:rollback", "x")).variables


def test_the_synth_step_writes_every_environment_where_its_artifacts_say(
    pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    """The step's own lines, run in this checkout with the clone directory Bitbucket would
    give (the synth writes into a folder whose parent does not exist yet)."""
    (step,) = {
        step.name: step for step in every_step(pipelines) if "synth" in step.make_targets()
    }.values()
    environment = {**without_secrets(), "BITBUCKET_CLONE_DIR": str(tmp_path)}
    for line in step.script:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", line],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=environment,
        )
        assert result.returncode == 0, line + "\n" + result.stdout + result.stderr
    written = sorted(
        p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.glob("**/cdk.tf.json")
    )
    environments = ("dev", "prod", "staging")
    stacks = ("app", "cluster", "platform", "platform-crs")
    assert written == [
        f"cdktf.out/{env}/stacks/{stack}" for env in environments for stack in stacks
    ]
