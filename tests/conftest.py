"""Fixtures every test suite may use: the shared weather photos beside the clone."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from devmesh.tokens import LocalIssuer
from tools.proof.gateway import Metadata
from tools.proof.tokens import operator_metadata

# `WEATHER_DATASET` moves it (e.g. for a git worktree that is not beside `shared/`).
WEATHER_DATASET = Path(
    os.environ.get(
        "WEATHER_DATASET",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "weather",
    )
)


@pytest.fixture(scope="session")
def weather_dataset() -> Path:
    """`../shared/datasets/weather`; its absence fails the test rather than skipping it."""
    if not (WEATHER_DATASET / "MANIFEST.csv").is_file():
        pytest.fail(
            f"weather dataset not found at {WEATHER_DATASET.resolve()}: the tests read "
            "the shared dataset beside the clone (../shared/datasets/weather)"
        )
    return WEATHER_DATASET


@pytest.fixture(scope="session")
def odd_photos(weather_dataset: Path) -> list[Path]:
    """Every file of the dataset that is not a plain RGB JPEG named .jpg, plus the largest one."""
    with (weather_dataset / "MANIFEST.csv").open(newline="") as manifest:
        rows = list(csv.DictReader(manifest))
    odd = [
        row
        for row in rows
        if row["format"] != "JPEG" or row["mode"] != "RGB" or not row["path"].endswith(".jpg")
    ]
    largest = max(rows, key=lambda row: int(row["width"]) * int(row["height"]))
    return [weather_dataset / row["path"] for row in [*odd, largest]]


@pytest.fixture(scope="session")
def local_issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    """The identity provider the test meshes trust: a key pair made for this session."""
    issuer = LocalIssuer(tmp_path_factory.mktemp("identity"))
    issuer.ensure_key()
    return issuer


@pytest.fixture(scope="session")
def operator(local_issuer: LocalIssuer) -> Metadata:
    """gRPC metadata of an operator, for the calls only a signed-in caller may make."""
    return operator_metadata(local_issuer)
