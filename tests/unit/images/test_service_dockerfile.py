"""The one service image recipe, rendered per service: what each image installs and copies.

No container engine is needed: the Dockerfile is read as text and rendered with each
service's build arguments; what it would install is checked against the code it runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tools.requirements_check import closure, read_pins, requirements_file, service_requirements

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "images" / "service.Dockerfile"
SERVICES = ("dispatcher", "classifier", "reporting")
TARGET = "/opt/weather-mesh"
NEVER_SHIPPED = ("training", "devmesh", "tests", "bench", "tools", ".data")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def render(service: str, path: Path = DOCKERFILE) -> list[Stage]:
    """The build stages as `--build-arg SERVICE=<service>` makes them; continuation lines
    joined, comments dropped, `${ARG}` replaced by the argument's value."""
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
    arguments = {"SERVICE": service}
    stages: list[Stage] = []
    for line in logical:
        name, _, value = line.partition(" ")
        name = name.upper()
        if name == "ARG":
            arg, _, default = value.partition("=")
            arguments.setdefault(arg, default)
            continue
        value = re.sub(r"\$\{(\w+)\}", lambda match: arguments.get(match.group(1), ""), value)
        if name == "FROM":
            base, _, alias = value.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=alias.strip()))
        elif stages:
            stages[-1].instructions.append((name, value.strip()))
    return stages


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    found = []
    for value in stage.values("COPY"):
        if value.startswith("--from="):
            continue
        *sources, destination = shlex.split(value)
        found.append((sources, destination))
    return found


def install_stage(service: str) -> Stage:
    [stage] = [stage for stage in render(service) if stage.name == "install"]
    return stage


def runtime_stage(service: str) -> Stage:
    stages = render(service)
    assert stages[-1].name == "runtime", "the last stage is the image that ships"
    return stages[-1]


def shipped_files(service: str) -> list[str]:
    """Repository paths of every file the image's COPY instructions take."""
    files: list[str] = []
    for sources, _destination in copies(install_stage(service)):
        for source in sources:
            path = ROOT / source
            if path.is_file():
                files.append(source)
            else:
                files += [
                    child.relative_to(ROOT).as_posix()
                    for child in path.rglob("*")
                    if child.is_file() and "__pycache__" not in child.parts
                ]
    return files


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_installs_its_own_hash_pinned_requirements(service: str) -> None:
    stage = install_stage(service)
    requirement_copies = [
        src for sources, _ in copies(stage) for src in sources if "requirements" in src
    ]
    assert requirement_copies == [f"requirements/{service}.txt"]
    [install] = [run for run in stage.values("RUN") if "pip install" in run]
    arguments = shlex.split(install)
    assert {"--require-hashes", "--no-deps"} <= set(arguments)
    assert arguments[arguments.index("--target") + 1] == TARGET
    assert requirements_file(service).is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_copies_the_kit_the_contract_and_only_its_own_service(service: str) -> None:
    sources = {src for sources, _ in copies(install_stage(service)) for src in sources}
    sources.discard(f"requirements/{service}.txt")
    assert sources == {
        "gen/python/weather",
        "meshkit",
        "services/__init__.py",
        "services/__main__.py",
        f"services/{service}",
    }
    for destination in (dest for _, dest in copies(install_stage(service))):
        assert destination == "requirements.txt" or destination.startswith(TARGET)


@pytest.mark.parametrize("service", SERVICES)
def test_no_image_carries_training_code_run_logs_datasets_or_dev_tools(service: str) -> None:
    files = shipped_files(service)
    assert files
    for path in files:
        assert path.split("/")[0] not in NEVER_SHIPPED, path
        assert "training" not in Path(path).parts, path
        assert not path.endswith(("last_training_run.json", ".csv", ".jpg", ".png")), path
        other_services = [name for name in SERVICES if name != service]
        assert not any(path.startswith(f"services/{name}/") for name in other_services), path


def test_the_classifier_image_carries_the_shipped_model_file() -> None:
    assert "services/classifier/weather_classifier.keras" in shipped_files("classifier")
    assert not any(path.endswith(".keras") for path in shipped_files("dispatcher"))


def service_distributions(service: str) -> set[str]:
    return {canonicalize_name(name) for name in read_pins(requirements_file(service).read_text())}


@pytest.mark.parametrize("service", ["dispatcher", "reporting"])
def test_tensorflow_is_installed_by_the_classifier_only(service: str) -> None:
    assert not {name for name in service_distributions(service) if "tensorflow" in name}
    assert "tensorflow-cpu" in service_distributions("classifier")
    assert "keras" in service_distributions("classifier")


def test_postgresql_drivers_are_installed_by_reporting_only() -> None:
    for service in ("dispatcher", "classifier"):
        assert not {name for name in service_distributions(service) if "psycopg" in name}
    assert {"psycopg", "psycopg-binary", "psycopg-pool"} <= service_distributions("reporting")


def modules_of(distributions: set[str]) -> set[str]:
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


def import_with_only(modules: list[str], shipped: set[str]) -> subprocess.CompletedProcess[str]:
    """Import `modules` where, of the packages installed here, only `shipped` (and Python's
    own library) can be imported: what the image would see."""
    installed: set[str] = {
        canonicalize_name(dist.metadata["Name"]) for dist in importlib.metadata.distributions()
    }
    absent = modules_of(installed - shipped) - modules_of(shipped)
    absent -= {"weather", "meshkit", "services", "devmesh", "tools", "tests", "training"}
    block = f"import sys; sys.modules.update(dict.fromkeys({sorted(absent)!r}))"
    imports = "; ".join(f"import {module}" for module in modules)
    return subprocess.run(
        [sys.executable, "-c", f"{block}; {imports}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def service_modules(service: str) -> list[str]:
    package = ROOT / "services" / service
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path.name != "__main__.py"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_module_of_a_service_imports_with_only_its_image_packages(service: str) -> None:
    result = import_with_only(service_modules(service), service_distributions(service))
    assert result.returncode == 0, result.stderr


def test_the_import_check_catches_a_package_the_image_lacks() -> None:
    result = import_with_only(["tensorflow"], service_distributions("dispatcher"))
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_each_requirements_file_pins_the_kit_and_the_service_extra(service: str) -> None:
    assert service_distributions(service) == closure(service_requirements(service))


@pytest.mark.parametrize("service", SERVICES)
def test_the_runtime_runs_the_service_as_a_numeric_non_root_user_without_a_shell(
    service: str,
) -> None:
    runtime = runtime_stage(service)
    names = [name for name, _ in runtime.instructions]
    assert "RUN" not in names, "the runtime base has no shell"
    assert "HEALTHCHECK" not in names, "health is the gRPC health check, probed by the cluster"
    assert runtime.values("USER") == ["10001:10001"]
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "COPY")
    assert json.loads(runtime.values("ENTRYPOINT")[-1]) == ["python3", "-m", "services"]
    environment = dict(
        pair.partition("=")[::2] for value in runtime.values("ENV") for pair in shlex.split(value)
    )
    assert environment["PYTHONPATH"] == TARGET
    assert environment["WEATHER_MESH_SERVICE"] == service
    # A read-only root file system: no bytecode cache, caches under HOME go to /tmp.
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["HOME"] == "/tmp"


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_is_labelled_with_its_source_and_version(service: str) -> None:
    labels = " ".join(runtime_stage(service).values("LABEL"))
    assert "org.opencontainers.image.source=" in labels
    assert "org.opencontainers.image.version=" in labels
    assert "org.opencontainers.image.revision=" in labels


def test_python_m_services_runs_the_service_the_image_names() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "services"],
        cwd=ROOT,
        env={"WEATHER_MESH_SERVICE": "gateway", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "dispatcher, classifier, reporting" in refused.stderr
    for service in SERVICES:
        assert (ROOT / "services" / service / "__main__.py").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_build_context_keeps_what_the_image_copies(service: str) -> None:
    """.dockerignore is an allow-list (`*` then `!path`): each COPY source must be let back in."""
    patterns = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in patterns, ".dockerignore no longer starts from nothing"
    allowed = [line[1:].rstrip("/") for line in patterns if line.startswith("!")]
    for sources, _destination in copies(install_stage(service)):
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert any(
                source == path or source.startswith(f"{path}/") or Path(source).match(path)
                for path in allowed
            ), f"COPY {source}: .dockerignore leaves it out of the build context"


def test_lint_docker_lints_every_dockerfile_under_images() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in (ROOT / "images").glob("*Dockerfile")}
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "lint-docker"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    hadolint_lines = [line for line in dry_run.stdout.splitlines() if "/hadolint " in line]
    linted = {arg for line in hadolint_lines for arg in shlex.split(line)[1:]}
    assert "images/service.Dockerfile" in found
    assert found <= linted, f"lint-docker skips {sorted(found - linted)}"
