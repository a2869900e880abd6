"""bitbucket-pipelines.yml as the runner and the tests see it: pipelines made of stages of steps.

Anchors and aliases are resolved by the YAML parser, so a step defined once under
`definitions.steps` and used by two pipelines is the same `Step` in both. Only what Bitbucket
would act on is modelled; a key this runner cannot honour (`after-script`, `condition`,
`stage`) is refused rather than silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tools.ci.make_database import called_targets

# Bitbucket's documented default when a step sets no `max-time`.
DEFAULT_MAX_TIME_MINUTES = 120
_UNSUPPORTED_STEP_KEYS = {"after-script", "condition"}


class PipelineFileError(ValueError):
    """The file asks for something that does not exist or that this runner cannot do."""


@dataclass(frozen=True)
class Step:
    name: str
    script: tuple[str, ...]
    max_time_minutes: float = DEFAULT_MAX_TIME_MINUTES
    deployment: str | None = None
    manual: bool = False
    image: str | None = None
    services: tuple[str, ...] = ()
    caches: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()

    def make_targets(self) -> list[str]:
        """Every make target the script asks for, in order."""
        return [target for line in self.script for target in called_targets(line)]


@dataclass(frozen=True)
class Stage:
    """One step, or a parallel group whose steps Bitbucket starts together."""

    steps: tuple[Step, ...]
    parallel: bool = False


@dataclass(frozen=True)
class Variable:
    """A custom pipeline's input, asked for when the pipeline is run by hand."""

    name: str
    default: str | None = None
    allowed_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    key: str
    stages: tuple[Stage, ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)

    def steps(self) -> list[Step]:
        return [step for stage in self.stages for step in stage.steps]


def load_document(path: Path) -> dict[str, Any]:
    """The parsed file, aliases resolved (safe loader: plain dicts, lists and scalars)."""
    document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or "pipelines" not in document:
        raise PipelineFileError(f"{path}: no `pipelines` section")
    return document


def pipeline_keys(document: dict[str, Any]) -> list[str]:
    """`default`, `branches:main`, `pull-requests:**`, `custom:rollback`, ... in file order."""
    keys: list[str] = []
    for kind, value in document["pipelines"].items():
        if kind == "default":
            keys.append("default")
        else:
            keys.extend(f"{kind}:{selector}" for selector in value)
    return keys


def _glob_matches(pattern: str, name: str) -> bool:
    """Bitbucket's branch globs: `*` stays within one path segment, `**` crosses `/`."""
    regex = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.fullmatch(regex, name) is not None


def resolve_key(document: dict[str, Any], spec: str, branch: str) -> str:
    """Turn what a developer types into a pipeline key.

    `pull-requests` picks the pull-request pipeline whose glob matches `branch` (the source
    branch), like Bitbucket; a bare name such as `main` is a branch pipeline; `kind:selector`
    (`custom:rollback`, `branches:main`) is taken as it is.
    """
    keys = pipeline_keys(document)
    if spec in keys:
        return spec
    kind, _, selector = spec.partition(":")
    if not selector and spec == "pull-requests":
        kind, selector = spec, branch
    elif not selector:
        kind, selector = "branches", spec
    candidates = [key for key in keys if key.startswith(f"{kind}:")]
    exact = f"{kind}:{selector}"
    if exact in candidates:
        return exact
    for key in candidates:
        if _glob_matches(key.split(":", 1)[1], selector):
            return key
    raise PipelineFileError(f"no pipeline for {spec!r}; the file has: {', '.join(keys)}")


def _step(raw: dict[str, Any]) -> Step:
    unsupported = _UNSUPPORTED_STEP_KEYS & set(raw)
    if unsupported:
        raise PipelineFileError(f"step {raw.get('name')!r}: unsupported {sorted(unsupported)}")
    artifacts = raw.get("artifacts", ())
    if isinstance(artifacts, dict):
        artifacts = artifacts.get("paths", ())
    image = raw.get("image")
    return Step(
        name=str(raw.get("name", "(unnamed step)")),
        script=tuple(str(line) for line in raw["script"]),
        max_time_minutes=int(raw.get("max-time", DEFAULT_MAX_TIME_MINUTES)),
        deployment=raw.get("deployment"),
        manual=raw.get("trigger") == "manual",
        image=image.get("name") if isinstance(image, dict) else image,
        services=tuple(raw.get("services", ())),
        caches=tuple(raw.get("caches", ())),
        artifacts=tuple(str(path) for path in artifacts),
    )


def _stages(items: list[Any]) -> tuple[list[Stage], list[Variable]]:
    stages: list[Stage] = []
    variables: list[Variable] = []
    for item in items:
        if "step" in item:
            stages.append(Stage(steps=(_step(item["step"]),)))
        elif "parallel" in item:
            group = item["parallel"]
            members = group["steps"] if isinstance(group, dict) else group
            steps = tuple(_step(member["step"]) for member in members)
            stages.append(Stage(steps=steps, parallel=True))
        elif "variables" in item:
            variables.extend(
                Variable(
                    name=str(variable["name"]),
                    default=None if "default" not in variable else str(variable["default"]),
                    allowed_values=tuple(str(v) for v in variable.get("allowed-values", ())),
                )
                for variable in item["variables"]
            )
        else:
            raise PipelineFileError(f"unsupported pipeline item: {sorted(item)}")
    return stages, variables


def pipeline(document: dict[str, Any], key: str) -> Pipeline:
    """The stages of one pipeline, by key (see `pipeline_keys`)."""
    if key == "default":
        items = document["pipelines"]["default"]
    else:
        kind, _, selector = key.partition(":")
        try:
            items = document["pipelines"][kind][selector]
        except KeyError as missing:
            raise PipelineFileError(f"no pipeline {key!r}") from missing
    stages, variables = _stages(items)
    return Pipeline(key=key, stages=tuple(stages), variables=tuple(variables))


def all_pipelines(document: dict[str, Any]) -> list[Pipeline]:
    return [pipeline(document, key) for key in pipeline_keys(document)]
