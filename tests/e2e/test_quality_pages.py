"""The Stats view pages through GetQuality: more model versions than one page holds.

No classifier can answer with 25 model versions, so the answers are put on the broker as the
classifier would publish them (succeeded events, each naming its model version); reporting
records them like any other, and the browser reads them through the gateway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import nats
import pytest
from playwright.sync_api import Page, expect

from meshkit.job_events import publish_event
from services.reporting.query import DEFAULT_PAGE_SIZE
from tests.e2e.harness import RunningMesh, start_mesh
from weather.v1 import events_pb2, job_pb2

pytestmark = pytest.mark.timeout(600)

QUALITY_PAGE_SIZE = DEFAULT_PAGE_SIZE  # the UI asks GetQuality for its default page
REPORTING_LAG_SECONDS = 30
# Three versions with two answers each come first; the rest, one answer each, by name.
VERSIONS = [f"sha256:{index:012x}" for index in range(1, QUALITY_PAGE_SIZE + 6)]
ANSWERS = {version: 2 if index < 3 else 1 for index, version in enumerate(VERSIONS)}


@pytest.fixture(scope="module")
def mesh() -> Iterator[RunningMesh]:
    yield from start_mesh("dispatcher,reporting", "mesh-quality-pages")


def _answer(version: str, submitted_at: datetime) -> events_pb2.JobEvent:
    job_id = uuid.uuid4().hex
    event = events_pb2.JobEvent(
        event_id=f"{job_id}.terminal", job_id=job_id, image_sha256=uuid.uuid4().hex * 2
    )
    event.submitted_at.FromDatetime(submitted_at)
    event.occurred_at.FromDatetime(submitted_at + timedelta(milliseconds=200))
    event.succeeded.classification.CopyFrom(
        job_pb2.Classification(
            label="rain",
            confidence=0.9,
            model_version=version,
            scores=[job_pb2.LabelScore(label="rain", score=0.9)],
        )
    )
    return event


async def _publish_answers(mesh: RunningMesh) -> None:
    client = await nats.connect(**mesh.nats_connect_options())
    try:
        jetstream = client.jetstream()
        submitted_at = datetime.now(UTC) - timedelta(minutes=5)
        for version, count in ANSWERS.items():
            for _ in range(count):
                await publish_event(jetstream, _answer(version, submitted_at))
    finally:
        await client.close()


def test_stats_shows_a_page_of_model_versions_then_more_most_answers_first(
    page: Page, mesh: RunningMesh
) -> None:
    # Playwright's sync API runs an event loop in this thread: nats.py gets its own thread.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _publish_answers(mesh)).result()
    page.goto(f"{mesh.gateway}/#stats")
    page.evaluate(
        "token => sessionStorage.setItem('weather-mesh.token', token)",
        mesh.token("e2e-operator", "operator"),
    )
    page.reload()
    total = page.locator("#stats-total")
    deadline_ms = REPORTING_LAG_SECONDS * 1000
    for _ in range(REPORTING_LAG_SECONDS):
        if total.inner_text() == str(sum(ANSWERS.values())):
            break
        page.click("#stats-refresh")
        page.wait_for_timeout(1000)
    expect(total).to_have_text(str(sum(ANSWERS.values())), timeout=deadline_ms)

    cards = page.locator("#stats-quality figure")
    more = page.get_by_role("button", name="More model versions")
    expect(cards).to_have_count(QUALITY_PAGE_SIZE)
    expect(more).to_be_visible()
    more.click()
    expect(cards).to_have_count(len(VERSIONS))
    expect(more).to_be_hidden()
    shown = [cards.nth(index).get_attribute("data-model-version") for index in range(len(VERSIONS))]
    assert shown == VERSIONS
    expect(cards.first.locator(".quality-figures")).to_have_text(
        "2 answers, none with feedback yet"
    )

    page.click("#stats-refresh")  # back to the first page
    expect(cards).to_have_count(QUALITY_PAGE_SIZE)
    expect(more).to_be_visible()
