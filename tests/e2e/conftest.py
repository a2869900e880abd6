"""Headless Debian chromium, real photos and artifact paths for the browser tests.

The mesh itself comes from `harness.start_mesh`, one per test module (see the modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.e2e.harness import ARTIFACTS, DATASET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make e2e-deps` installs Debian's chromium")
    browser = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """One real validation photo per label: label -> path."""
    if not (DATASET / "val").is_dir():
        pytest.fail(f"the weather dataset is missing at {DATASET}")
    chosen = {}
    for label_dir in sorted((DATASET / "val").iterdir()):
        candidates = sorted(label_dir.glob("*.jpg"))
        if candidates:
            chosen[label_dir.name] = candidates[0]
    return chosen
