"""The UI in headless chromium against the whole mesh: classify, fail clearly, history, stats."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from playwright.sync_api import Page, expect

from meshkit.contract_constants import LABELS as CONTRACT_LABELS
from tests.e2e.harness import REPO_ROOT, RunningMesh, start_mesh
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

pytestmark = pytest.mark.timeout(600)  # the first test also starts the mesh and TensorFlow

LABELS = set(CONTRACT_LABELS)
FIRST_CLASSIFICATION_SECONDS = 120  # the classifier may still be loading TensorFlow
REPORTING_LAG_SECONDS = 30  # reporting learns of jobs from NATS events
HISTORY_PAGE_SIZE = 10  # ui/src/history.ts


@pytest.fixture(scope="module")
def mesh() -> Iterator[RunningMesh]:
    yield from start_mesh("dispatcher,classifier,reporting", "mesh-ui")


def _open(page: Page, mesh: RunningMesh, view: str = "classify") -> None:
    """The view, signed in as an operator (who may open every view)."""
    page.goto(f"{mesh.gateway}/#{view}")
    page.evaluate(
        "token => sessionStorage.setItem('weather-mesh.token', token)",
        mesh.token("e2e-operator", "operator"),
    )
    page.reload()
    expect(page.get_by_role("heading", level=1, name="weather-mesh")).to_be_visible()
    expect(page.get_by_test_id("session-role")).to_have_text("operator")


def _stats_succeeded(page: Page, mesh: RunningMesh) -> int:
    _open(page, mesh, "stats")
    total = page.locator("#stats-total")
    expect(total).to_have_text(re.compile(r"^\d+$"))
    return int(page.locator("#stats-succeeded").inner_text())


def _wait_for(page: Page, check: str, refresh: str, seconds: float) -> None:
    """Click `refresh` until the page's `check` holds: reporting is eventually consistent."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(check):
        if time.monotonic() > deadline:
            pytest.fail(f"{check} did not hold within {seconds:g} s")
        page.click(refresh)
        page.wait_for_timeout(1000)


def test_a_real_photo_is_classified_then_listed_in_history_and_counted_in_stats(
    page: Page, mesh: RunningMesh, photos: dict[str, Path], artifacts: Path
) -> None:
    succeeded_before = _stats_succeeded(page, mesh)
    photo = photos["sunrise"]

    _open(page, mesh)
    page.get_by_label("Choose a photo").set_input_files(photo)
    expect(page.locator("#preview-image")).to_be_visible()
    expect(page.locator("#preview-caption")).to_contain_text(photo.name)
    page.get_by_role("button", name="Classify").click()

    label = page.get_by_test_id("job-label")
    expect(label).to_have_text(
        re.compile("^(cloudy|rain|shine|sunrise)$"), timeout=FIRST_CLASSIFICATION_SECONDS * 1000
    )
    expect(page.locator("#job-status")).to_contain_text("looks like")
    bars = page.locator("#job-scores li")
    expect(bars).to_have_count(4)
    scored = {bars.nth(i).locator(".bar-name").inner_text() for i in range(4)}
    assert scored == LABELS
    expect(page.locator("#job-model")).to_have_text(re.compile(r"\S+"))
    job_id = page.locator("#job-id").inner_text()
    assert job_id
    page.screenshot(path=str(artifacts / "classified.png"), full_page=True)
    if os.environ.get("E2E_UPDATE_DOCS") == "1":  # make docs-screenshot: the README's picture
        (REPO_ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(artifacts / "classified.png", REPO_ROOT / "docs" / "ui.png")

    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    row = f"#history-rows tr[data-job-id='{job_id}']"
    # Reporting may list the job as queued before it hears that it succeeded.
    label_cell = f'document.querySelector("{row} td:nth-child(4)")?.textContent'
    _wait_for(
        page, f"{label_cell} === {label.inner_text()!r}", "#history-refresh", REPORTING_LAG_SECONDS
    )
    cells = page.locator(f"{row} td")
    expect(cells.nth(1)).to_have_text(photo.name)
    expect(cells.nth(3)).to_have_text(label.inner_text())
    page.get_by_label("Label", exact=True).select_option(label.inner_text())
    expect(page.locator(row)).to_have_count(1)
    page.get_by_label("State", exact=True).select_option(label="Failed")
    expect(page.locator(row)).to_have_count(0)
    page.get_by_label("State", exact=True).select_option(label="Succeeded")
    expect(page.locator(row)).to_have_count(1)
    page.screenshot(path=str(artifacts / "history.png"), full_page=True)

    page.get_by_role("link", name="Stats").click()
    _wait_for(
        page,
        f'Number(document.querySelector("#stats-succeeded").textContent) >= {succeeded_before + 1}',
        "#stats-refresh",
        REPORTING_LAG_SECONDS,
    )
    assert int(page.locator("#stats-total").inner_text()) >= succeeded_before + 1
    chart = page.locator("#stats-chart svg[role=img]")
    expect(chart).to_have_attribute("aria-label", re.compile(label.inner_text() + r" [1-9]"))
    page.screenshot(path=str(artifacts / "stats.png"), full_page=True)


def test_a_text_file_named_jpg_is_refused_in_plain_words(
    page: Page, mesh: RunningMesh, tmp_path: Path, artifacts: Path
) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a shopping list, not a photo\n")

    _open(page, mesh)
    page.get_by_label("Choose a photo").set_input_files(fake)
    page.get_by_role("button", name="Classify").click()

    error = page.get_by_role("alert").filter(has_text="photo")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text("isn't a photo we can read")
    expect(page.get_by_test_id("job-label")).to_be_hidden()
    page.screenshot(path=str(artifacts / "not-a-photo.png"), full_page=True)


def test_an_oversized_photo_is_refused_before_upload(
    page: Page, mesh: RunningMesh, tmp_path: Path
) -> None:
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024 + 1))
    submits = []
    page.on(
        "request", lambda request: submits.append(request.url) if "Submit" in request.url else None
    )

    _open(page, mesh)
    page.get_by_label("Choose a photo").set_input_files(big)

    expect(page.get_by_role("alert")).to_contain_text("at most 10.0 MB")
    expect(page.get_by_role("button", name="Classify")).to_be_disabled()
    assert submits == []


def test_a_dropped_photo_is_previewed_and_can_be_sent(
    page: Page, mesh: RunningMesh, photos: dict[str, Path]
) -> None:
    photo = photos["rain"]
    _open(page, mesh)
    page.evaluate(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
            document.querySelector("#drop-zone").dispatchEvent(
                new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [photo.name, list(photo.read_bytes())],
    )
    expect(page.locator("#preview-caption")).to_contain_text(photo.name)
    expect(page.get_by_role("button", name="Classify")).to_be_enabled()
    page.get_by_role("button", name="Classify").click()
    expect(page.get_by_test_id("job-label")).to_have_text(
        re.compile("^(cloudy|rain|shine|sunrise)$"), timeout=FIRST_CLASSIFICATION_SECONDS * 1000
    )


def test_at_phone_width_nothing_overflows_and_the_views_work_from_the_keyboard(
    page: Page, mesh: RunningMesh, artifacts: Path
) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    _open(page, mesh)
    for view in ("classify", "history", "stats"):
        link = page.get_by_role("link", name=view.capitalize())
        link.focus()
        page.keyboard.press("Enter")
        expect(link).to_have_attribute("aria-current", "page")
        expect(page.locator(f"#view-{view}")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{view} is {overflow}px wider than a phone screen"
        page.screenshot(path=str(artifacts / f"phone-{view}.png"), full_page=True)

    page.get_by_role("link", name="Classify").click()
    page.keyboard.press("Tab")
    for _ in range(10):
        if page.evaluate("document.activeElement?.id") == "photo-input":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement?.id") == "photo-input"


def test_history_pages_through_jobs_with_older_and_newer(
    page: Page, mesh: RunningMesh, photos: dict[str, Path]
) -> None:
    every_photo = sorted(
        path for label_dir in photos.values() for path in label_dir.parent.glob("*.jpg")
    )[: HISTORY_PAGE_SIZE + 2]
    with grpc.insecure_channel(mesh.grpc_target) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        for photo in every_photo:
            request = dispatcher_pb2.SubmitRequest(image=photo.read_bytes(), filename=photo.name)
            stub.Submit(request, timeout=30)

    _open(page, mesh, "history")
    older = page.get_by_role("button", name="Older")
    _wait_for(page, "!document.querySelector('#history-older').disabled", "#history-refresh", 30)
    first_page = page.locator("#history-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)"
    )
    assert len(first_page) == HISTORY_PAGE_SIZE

    older.click()
    expect(page.locator("#history-page")).to_have_text("Page 2")
    second_page = page.locator("#history-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)"
    )
    assert second_page
    assert not set(first_page) & set(second_page)

    page.get_by_role("button", name="Newer").click()
    expect(page.locator("#history-page")).to_have_text("Page 1")
    expect(page.get_by_role("button", name="Newer")).to_be_disabled()


def test_signing_in_shows_who_you_are_and_the_stats_only_to_operators(
    page: Page, mesh: RunningMesh
) -> None:
    page.goto(f"{mesh.gateway}/#stats")
    nav = page.get_by_role("navigation", name="Views")
    # Anonymous (the demo mode of `make up`): classify only.
    expect(page.locator("#view-classify")).to_be_visible()
    expect(nav.get_by_role("link", name="Stats")).to_be_hidden()
    expect(nav.get_by_role("link", name="History")).to_be_hidden()

    page.get_by_label("Token").fill(mesh.token("alice"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("session-user")).to_have_text("alice")
    expect(page.get_by_test_id("session-role")).to_have_text("viewer")
    expect(nav.get_by_role("link", name="History")).to_be_visible()
    expect(nav.get_by_role("link", name="Stats")).to_be_hidden()
    page.goto(f"{mesh.gateway}/#stats")
    expect(page.locator("#view-stats")).to_be_hidden()
    expect(page.locator("#view-classify")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Token").fill(mesh.token("olivia", "operator"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("session-user")).to_have_text("olivia")
    nav.get_by_role("link", name="Stats").click()
    expect(page.locator("#view-stats")).to_be_visible()
    expect(page.locator("#stats-total")).to_have_text(re.compile(r"^\d+$"))


def test_the_token_is_kept_for_the_tab_only(page: Page, mesh: RunningMesh) -> None:
    page.goto(f"{mesh.gateway}/")
    page.get_by_label("Token").fill(mesh.token("alice"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("session-user")).to_have_text("alice")
    assert page.evaluate("Object.keys(localStorage).length") == 0
    other_tab = page.context.new_page()
    other_tab.goto(f"{mesh.gateway}/")
    expect(other_tab.get_by_label("Token")).to_be_visible()
    expect(other_tab.locator("#signed-in")).to_be_hidden()


def test_feedback_on_an_answer_is_given_in_one_click_changed_and_seen_in_the_quality_stats(
    page: Page, mesh: RunningMesh, photos: dict[str, Path], artifacts: Path
) -> None:
    _open(page, mesh)
    page.get_by_label("Choose a photo").set_input_files(photos["rain"])
    page.get_by_role("button", name="Classify").click()
    label = page.get_by_test_id("job-label")
    expect(label).to_have_text(
        re.compile("^(cloudy|rain|shine|sunrise)$"), timeout=FIRST_CLASSIFICATION_SECONDS * 1000
    )
    answer = label.inner_text()
    model = page.locator("#job-model").inner_text()

    expect(page.get_by_role("group", name="Was this right?")).to_be_visible()
    page.get_by_role("button", name="Yes, it was right").click()
    status = page.get_by_test_id("feedback-status")
    expect(status).to_have_text("Thanks: you said it was right.")
    other = sorted(LABELS - {answer})[0]
    page.get_by_label("No, it is").select_option(other)
    expect(status).to_have_text(f"Thanks: you said it is {other}.")
    page.screenshot(path=str(artifacts / "feedback.png"), full_page=True)

    job_id = page.locator("#job-id").inner_text()
    page.get_by_role("link", name="History").click()
    feedback_cell = (
        f"document.querySelector(\"#history-rows tr[data-job-id='{job_id}'] td:nth-child(6)\")"
    )
    _wait_for(
        page,
        f"{feedback_cell}?.textContent === 'wrong: {other}'",
        "#history-refresh",
        REPORTING_LAG_SECONDS,
    )

    page.get_by_role("link", name="Stats").click()
    card = f'#stats-quality figure[data-model-version="{model}"]'
    _wait_for(
        page,
        f"/[0-9]+ of [0-9]+ answers with feedback/.test("
        f"document.querySelector('{card} .quality-figures')?.textContent ?? '')",
        "#stats-refresh",
        REPORTING_LAG_SECONDS,
    )
    expect(page.locator(f"{card} .quality-figures")).to_contain_text("accuracy")
    chart = page.locator(f"{card} svg[role=img]")
    # The label the photo "really shows" is judged only because of this feedback: it has a bar.
    expect(chart).to_have_attribute(
        "aria-label",
        re.compile(f"F1 per label in % for {re.escape(model)}: .*\\b{other} [0-9]+"),
    )
    expect(page.locator("#stats-quality-more")).to_be_hidden()  # one model: one page
    page.screenshot(path=str(artifacts / "quality.png"), full_page=True)
