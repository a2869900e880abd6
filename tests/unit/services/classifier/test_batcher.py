"""The dynamic batcher: shared forward passes, bounded batches, bounded waits, clean stop."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pytest
from PIL import Image

from meshkit.contract_constants import LABELS
from meshkit.images import UnreadableImageError
from services.classifier.batcher import Batcher, BatcherStoppedError
from services.classifier.preprocess import INPUT_SIZE


class CountingModel:
    """Answers 'rain' for everything and records each forward pass's batch size."""

    version = "sha256:test"

    def __init__(self, delay: float = 0.0) -> None:
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()
        self._delay = delay

    @property
    def labels(self) -> Sequence[str]:
        return LABELS

    def predict(self, batch: np.ndarray) -> np.ndarray:
        assert batch.shape[1:] == (INPUT_SIZE, INPUT_SIZE, 3)
        self.batch_sizes.append(batch.shape[0])
        self.threads.add(threading.current_thread().name)
        if self._delay:
            threading.Event().wait(self._delay)
        probabilities = np.full((batch.shape[0], 4), 0.1, dtype=np.float32)
        probabilities[:, 1] = 0.7
        return probabilities


def photo(colour: str = "skyblue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 150), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@asynccontextmanager
async def running(batcher: Batcher) -> AsyncIterator[Batcher]:
    task = asyncio.create_task(batcher.run())
    yield batcher
    await batcher.stop()
    await asyncio.wait_for(task, 5)


def make_batcher(model: CountingModel, max_batch: int = 8, delay: float = 0.05) -> Batcher:
    return Batcher(
        model=lambda: model,
        max_batch=max_batch,
        max_queue_delay_seconds=delay,
        preprocess_threads=2,
        max_image_pixels=10_000_000,
    )


async def test_concurrent_images_share_one_forward_pass() -> None:
    model = CountingModel()
    async with running(make_batcher(model)) as batcher:
        answers = await asyncio.gather(*(batcher.classify(photo()) for _ in range(5)))
    assert model.batch_sizes == [5]
    assert {answer.label for answer in answers} == {"rain"}
    assert all(answer.batch_size == 5 for answer in answers)
    assert answers[0].confidence == pytest.approx(0.7)
    assert answers[0].scores["cloudy"] == pytest.approx(0.1)
    assert answers[0].model_version == "sha256:test"
    assert model.threads
    assert "MainThread" not in model.threads


async def test_batches_never_exceed_max_batch() -> None:
    model = CountingModel()
    async with running(make_batcher(model, max_batch=4)) as batcher:
        await asyncio.gather(*(batcher.classify(photo()) for _ in range(10)))
    assert sum(model.batch_sizes) == 10
    assert max(model.batch_sizes) <= 4


async def test_a_lone_image_does_not_wait_for_companions_that_are_not_coming() -> None:
    model = CountingModel()
    async with running(make_batcher(model, delay=5.0)) as batcher:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.classify(photo())
        elapsed = loop.time() - started
    assert model.batch_sizes == [1]
    assert elapsed < 2.0


async def test_an_unreadable_image_fails_alone_and_others_still_succeed() -> None:
    model = CountingModel()
    async with running(make_batcher(model)) as batcher:
        results = await asyncio.gather(
            batcher.classify(b"not a photo"), batcher.classify(photo()), return_exceptions=True
        )
    assert isinstance(results[0], UnreadableImageError)
    assert not isinstance(results[1], BaseException)
    assert model.batch_sizes == [1]


async def test_a_model_error_reaches_every_caller_of_that_batch() -> None:
    class BrokenModel(CountingModel):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            raise RuntimeError("out of memory")

    async with running(make_batcher(BrokenModel())) as batcher:
        results = await asyncio.gather(
            *(batcher.classify(photo()) for _ in range(3)), return_exceptions=True
        )
    assert all(isinstance(result, RuntimeError) for result in results)


async def test_stop_finishes_images_in_hand_and_refuses_new_ones() -> None:
    model = CountingModel(delay=0.1)
    batcher = make_batcher(model)
    task = asyncio.create_task(batcher.run())
    in_hand = [asyncio.create_task(batcher.classify(photo())) for _ in range(3)]
    await asyncio.sleep(0.01)
    await batcher.stop()
    assert [(await answer).label for answer in in_hand] == ["rain"] * 3
    with pytest.raises(BatcherStoppedError):
        await batcher.classify(photo())
    await asyncio.wait_for(task, 5)


async def test_an_image_still_decoding_is_waited_for_up_to_the_delay() -> None:
    model = CountingModel()
    async with running(make_batcher(model, delay=2.0)) as batcher:
        small = asyncio.create_task(batcher.classify(photo()))
        await asyncio.sleep(0)
        large = asyncio.create_task(batcher.classify(large_photo()))
        await asyncio.gather(small, large)
    assert model.batch_sizes == [2]


def large_photo() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((1600, 1200), 64).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
