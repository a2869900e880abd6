"""The services' Dockerfiles: hadolint-clean, non-root, and consistent with the code they run.

No Docker engine is needed: the files are linted with the hadolint binary and read as text.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from meshkit.settings import ServiceSettings
from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings

ROOT = Path(__file__).resolve().parents[3]
HADOLINT = Path(sys.executable).parent / "hadolint"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "dispatcher": DispatcherSettings,
    "classifier": ClassifierSettings,
    "reporting": ReportingSettings,
}
SERVICES = sorted(SETTINGS)
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+$")


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def dockerfile(service: str) -> Path:
    return ROOT / "services" / service / "Dockerfile"


def parse(path: Path) -> list[Stage]:
    """Instructions per build stage; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        name, _, value = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stages.append(Stage(base=value.split()[0]))
        elif stages:
            stages[-1].instructions.append((name, value.strip()))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in stage.values("ENV"):
        for pair in shlex.split(value):
            key, _, setting = pair.partition("=")
            env[key] = setting
    return env


def skipped_packages(stage: Stage) -> set[str]:
    for value in stage.values("ARG"):
        name, _, default = value.partition("=")
        if name == "SKIP_PACKAGES":
            return {canonicalize_name(item) for item in " ".join(shlex.split(default)).split()}
    return set()


def closure(names: set[str]) -> set[str]:
    """The installed distributions `names` pull in, following their runtime requirements."""
    seen: set[str] = set()
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def modules_of(distributions: set[str]) -> set[str]:
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_passes(service: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile(service))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n", encoding="utf-8")
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_lint_docker_lints_every_dockerfile() -> None:
    found = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*Dockerfile*")
        if path.is_file() and not {".venv", ".git", "node_modules"} & set(path.parts)
    }
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "lint-docker"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    hadolint_lines = [line for line in dry_run.stdout.splitlines() if "/hadolint " in line]
    linted = {arg for line in hadolint_lines for arg in shlex.split(line)[1:]}
    assert {f"services/{service}/Dockerfile" for service in SERVICES} <= found
    assert found <= linted, f"lint-docker skips {sorted(found - linted)}"


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_a_numeric_non_root_user(service: str) -> None:
    runtime = parse(dockerfile(service))[-1]
    users = runtime.values("USER")
    assert users, "the runtime stage never leaves root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]} is not numeric: Kubernetes cannot verify runAsNonRoot"
    assert int(uid) > 0, f"USER {users[-1]} is root"
    assert gid.isdigit(), f"USER {users[-1]} names no numeric group"
    assert int(gid) > 0, f"USER {users[-1]} has the root group"
    last_user = max(i for i, (name, _) in enumerate(runtime.instructions) if name == "USER")
    after = [name for name, _ in runtime.instructions[last_user + 1 :]]
    assert "RUN" not in after
    assert "USER" not in after


@pytest.mark.parametrize("service", SERVICES)
def test_is_multi_stage_on_one_pinned_slim_base(service: str) -> None:
    stages = parse(dockerfile(service))
    assert len(stages) >= 2, "no separate builder stage"
    for stage in stages:
        assert BASE_IMAGE.match(stage.base), f"base {stage.base} is not a pinned slim Python"
    # The runtime copies the builder's venv, whose interpreter path must exist there too.
    assert len({stage.base for stage in stages}) == 1
    copies = stages[-1].values("COPY")
    assert any(copy.startswith("--from=") for copy in copies), "runtime builds nothing itself"


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_runs_the_service_module(service: str) -> None:
    runtime = parse(dockerfile(service))[-1]
    entrypoints = runtime.values("ENTRYPOINT")
    assert entrypoints, "no ENTRYPOINT"
    command = json.loads(entrypoints[-1])
    assert command == ["python", "-m", f"services.{service}"]
    assert importlib.util.find_spec(f"services.{service}.__main__") is not None


@pytest.mark.parametrize("service", SERVICES)
def test_env_and_ports_match_the_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = parse(dockerfile(service))[-1]
    env = env_of(runtime)
    prefix = f"{service.upper()}_"
    assert env.get(f"{prefix}GRPC_HOST") == "0.0.0.0"
    assert env.get(f"{prefix}METRICS_HOST") == "0.0.0.0"
    for key, value in env.items():
        if key.startswith(prefix):
            monkeypatch.setenv(key, value)
    # The settings class must read the variables the image sets, under these exact names.
    settings = SETTINGS[service]()
    exposed = {int(port) for value in runtime.values("EXPOSE") for port in value.split()}
    assert settings.grpc_host == "0.0.0.0"
    assert settings.metrics_host == "0.0.0.0"
    assert exposed == {settings.grpc_port, settings.metrics_port}
    # The image keeps the service's default ports, the ones the rest of the mesh expects.
    defaults = SETTINGS[service].model_fields
    assert settings.grpc_port == defaults["grpc_port"].default
    assert settings.metrics_port == defaults["metrics_port"].default


def test_the_dockerfiles_are_one_template() -> None:
    def normalised(service: str) -> str:
        text = dockerfile(service).read_text(encoding="utf-8")
        settings = SETTINGS[service].model_fields
        for port_field in ("grpc_port", "metrics_port"):
            text = text.replace(str(settings[port_field].default), f"<{port_field}>")
        text = text.replace(service, "<service>").replace(service.upper(), "<SERVICE>")
        text = re.sub(r'^ARG SKIP_PACKAGES=".*"$', "ARG SKIP_PACKAGES=<skip>", text, flags=re.M)
        # The comment above SKIP_PACKAGES says why this service skips what it skips.
        return re.sub(r"^# Runtime dependencies .*\n# .*\n", "<why>\n", text, flags=re.M)

    reference = normalised(SERVICES[0])
    for service in SERVICES[1:]:
        assert normalised(service) == reference, f"{service}'s Dockerfile drifted"


def image_requirements(service: str) -> set[str]:
    """Run the builder's own requirements filter, as the image build does, over pyproject.toml."""
    builder = parse(dockerfile(service))[0]
    [run] = [value for value in builder.values("RUN") if "> requirements.txt" in value]
    command = run.split(" > requirements.txt", 1)[0]
    skip = " ".join(
        shlex.split(
            next(
                value.partition("=")[2]
                for value in builder.values("ARG")
                if value.startswith("SKIP_PACKAGES=")
            )
        )
    )
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SKIP_PACKAGES": skip},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {canonicalize_name(Requirement(line).name) for line in result.stdout.split()}


def project_requirements() -> set[str]:
    """pyproject.toml's runtime dependencies, by name."""
    with (ROOT / "pyproject.toml").open("rb") as pyproject:
        dependencies: list[str] = tomllib.load(pyproject)["project"]["dependencies"]
    return {canonicalize_name(Requirement(text).name) for text in dependencies}


def import_without(modules: list[str], kept: set[str]) -> subprocess.CompletedProcess[str]:
    """Import `modules` where only `kept` and what they require can be imported, of the
    project's runtime dependencies (dev tools stay importable)."""
    skipped = project_requirements() - kept
    own_modules = modules_of(skipped)
    assert own_modules, f"{sorted(skipped)} are not installed here, so nothing is checked"
    # A namespace package (google.*) can belong to kept and skipped distributions alike.
    absent = modules_of(closure(skipped) - closure(kept)) - modules_of(closure(kept))
    assert own_modules <= absent
    block = f"import sys; sys.modules.update(dict.fromkeys({sorted(absent)!r}))"
    imports = "; ".join(f"import {module}" for module in modules)
    return subprocess.run(
        [sys.executable, "-c", f"{block}; {imports}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def service_modules(service: str) -> list[str]:
    package = ROOT / "services" / service
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path.name != "__main__.py"
    )


SLIMMED = [service for service in SERVICES if skipped_packages(parse(dockerfile(service))[0])]


@pytest.mark.parametrize("service", SERVICES)
def test_image_requirements_leave_out_exactly_the_skipped_packages(service: str) -> None:
    skipped = skipped_packages(parse(dockerfile(service))[0])
    assert project_requirements() - image_requirements(service) == skipped


@pytest.mark.parametrize("service", SLIMMED)
def test_service_needs_none_of_the_packages_its_image_skips(service: str) -> None:
    result = import_without(service_modules(service), image_requirements(service))
    assert result.returncode == 0, result.stderr


def test_the_import_check_catches_a_skipped_package_in_use() -> None:
    kept = project_requirements() - {"tensorflow-cpu"}
    result = import_without(["tensorflow"], kept)
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_build_context_keeps_what_the_image_copies(service: str) -> None:
    """.dockerignore is an allow-list (`*` then `!path`): each COPY source must be let back in."""
    patterns = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in patterns, ".dockerignore no longer starts from nothing"
    allowed = [line[1:].rstrip("/") for line in patterns if line.startswith("!")]
    for stage in parse(dockerfile(service)):
        for copy in stage.values("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _destination = shlex.split(copy)
            for source in sources:
                source = source.rstrip("/")
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert any(path == source or path.startswith(f"{source}/") for path in allowed), (
                    f"COPY {source}: .dockerignore leaves it out of the build context"
                )
