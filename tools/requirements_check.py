"""Fail when a service's hash-pinned requirements file no longer says what the project says.

`make requirements` writes `requirements/<service>.txt` with pip-compile (it needs PyPI for
the hashes); this check runs offline in `make test`: the file must pin exactly the packages
the kit's dependencies plus the service's extra pull in (followed through the installed
packages' metadata), each at its `constraints.txt` version, each with at least one hash.
A dependency added, dropped or re-pinned without `make requirements` fails here.

    python -m tools.requirements_check dispatcher classifier reporting
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# `pip freeze` (which writes constraints.txt) leaves these out; pip-compile pins them.
FREEZE_OMITS = frozenset({"pip", "setuptools", "wheel", "distribute"})
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: int


def requirements_file(service: str, root: Path = ROOT) -> Path:
    return root / "requirements" / f"{service}.txt"


def read_pins(text: str) -> dict[str, Pin]:
    """`name==version` entries of a pip requirements file, with how many hashes each has."""
    pins: dict[str, Pin] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = PIN.match(stripped)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = Pin(match.group(2), 0)
        if current is not None and "--hash=sha256:" in stripped:
            pins[current] = Pin(pins[current].version, pins[current].hashes + 1)
    return pins


def service_requirements(service: str, root: Path = ROOT) -> list[Requirement]:
    """The kit's `dependencies` plus the service's extra, from pyproject.toml."""
    with (root / "pyproject.toml").open("rb") as pyproject:
        project = tomllib.load(pyproject)["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    if service not in extras:
        raise KeyError(f"pyproject.toml has no extra named {service!r}")
    return [Requirement(text) for text in [*project["dependencies"], *extras[service]]]


def closure(requirements: Iterable[Requirement]) -> set[str]:
    """Every distribution `requirements` pull in (extras and markers honoured), by the
    metadata of the packages installed here."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    todo = [
        (canonicalize_name(req.name), extra) for req in requirements for extra in ("", *req.extras)
    ]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        names.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo.extend(
                    (canonicalize_name(requirement.name), wanted)
                    for wanted in ("", *requirement.extras)
                )
    return names


def problems(service: str, constraints: dict[str, Pin], root: Path = ROOT) -> list[str]:
    path = requirements_file(service, root)
    if not path.is_file():
        return [f"{path.relative_to(root)} is missing"]
    pins = read_pins(path.read_text(encoding="utf-8"))
    wanted = closure(service_requirements(service, root))
    found: list[str] = []
    found += [f"{name} is needed but not pinned" for name in sorted(wanted - set(pins))]
    found += [f"{name} is pinned but not needed" for name in sorted(set(pins) - wanted)]
    for name in sorted(set(pins) & wanted):
        pin = pins[name]
        expected = constraints.get(name)
        if expected is None and name not in FREEZE_OMITS:
            found.append(f"{name} is not in constraints.txt")
        elif expected is not None and pin.version != expected.version:
            found.append(f"{name}=={pin.version}, but constraints.txt says {expected.version}")
        if pin.hashes == 0:
            found.append(f"{name} has no --hash")
    return [f"{path.relative_to(root)}: {problem}" for problem in found]


def main(services: Sequence[str]) -> int:
    constraints = read_pins((ROOT / "constraints.txt").read_text(encoding="utf-8"))
    found = [problem for service in services for problem in problems(service, constraints)]
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        print("requirements are stale: run `make requirements`", file=sys.stderr)
        return 1
    print(f"requirements current: {', '.join(f'requirements/{s}.txt' for s in services)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
