"""Dynamic batching: many callers, one model, one forward pass per batch.

Why: a forward pass over 32 images costs far less than 32 passes over one, and both the
queue consumer and the unary Classify RPC feed the same batches. Each caller's photo is
decoded and resized in a thread pool first (decoding runs while the model is busy with
the previous batch); the ready arrays queue up; the batching loop takes the first one,
waits at most `max_queue_delay` (counted from that image's arrival) for others, up to
`max_batch`, and runs the model in its own thread so the event loop stays free.

It only waits for images that are on their way (still being decoded): a lone image runs
at once, so the delay costs nothing at low load, while under load the images decoded
during one forward pass form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry import trace

from meshkit.decode_limit import DecodeLimit
from meshkit.job_messages import classification_message
from meshkit.tracing import BATCH_SIZE, MODEL_VERSION, current_span_context, links_to
from services.classifier.preprocess import preprocess
from weather.v1 import job_pb2

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class BatchModel(Protocol):
    """What the batcher needs from a model (WeatherModel fits)."""

    version: str

    @property
    def labels(self) -> Sequence[str]: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class BatcherStoppedError(RuntimeError):
    """The batcher is shutting down and takes no new images."""


@dataclass(frozen=True)
class Classified:
    """One image's answer and what it cost."""

    label: str
    confidence: float
    scores: dict[str, float]
    model_version: str
    preprocess_ms: float
    inference_ms: float
    batch_size: int
    batch_started_at: datetime

    def classification(self) -> job_pb2.Classification:
        """The answer in its wire form (shared by Classify and the queue)."""
        return classification_message(self.label, self.confidence, self.scores, self.model_version)


@dataclass
class _Pending:
    pixels: np.ndarray
    preprocess_ms: float
    enqueued_at: float
    answer: asyncio.Future[Classified]
    caller_span: trace.SpanContext
    """The span that asked (a job's, or a Classify RPC's): the batch span links to it."""


class Batcher:
    """Runs as a service worker (`run`/`stop`); `classify` may be called from any task."""

    def __init__(
        self,
        model: Callable[[], BatchModel],
        max_batch: int,
        max_queue_delay_seconds: float,
        preprocess_threads: int,
        max_image_pixels: int,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
        decode_limit: DecodeLimit | None = None,
    ) -> None:
        """`model` returns the loaded model (raising while it is not loaded yet);
        `on_batch(size, seconds)` observes every forward pass (metrics)."""
        self._model = model
        self._max_batch = max_batch
        self._max_queue_delay = max_queue_delay_seconds
        self._max_image_pixels = max_image_pixels
        self._on_batch = on_batch
        self._decode_limit = decode_limit or DecodeLimit(max_in_flight=2**31)
        self._preprocess_pool = ThreadPoolExecutor(
            preprocess_threads, thread_name_prefix="preprocess"
        )
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._callers = 0
        self._decoding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def classify(self, image: bytes, fail_fast: bool = True) -> Classified:
        """Decode, preprocess and classify one photo in a shared batch.

        Raises UnreadableImageError (from preprocess) for bytes that are not a usable
        photo, BatcherStoppedError while shutting down, DecoderBusyError when the process
        decodes as many photos as its limit allows and `fail_fast` (RPC callers; the
        queue's jobs, already bounded by max_ack_pending, wait); model errors propagate.
        """
        if self._stopping:
            raise BatcherStoppedError("the classifier is shutting down")
        model = self._model()  # fail fast while the model is not loaded
        del model
        self._callers += 1
        self._idle.clear()
        try:
            loop = asyncio.get_running_loop()
            with self._decode_limit.slot(fail_fast):
                self._decoding += 1
                try:
                    pixels, preprocess_ms = await loop.run_in_executor(
                        self._preprocess_pool, _timed_preprocess, image, self._max_image_pixels
                    )
                finally:
                    self._decoding -= 1
            answer: asyncio.Future[Classified] = loop.create_future()
            await self._queue.put(
                _Pending(pixels, preprocess_ms, loop.time(), answer, current_span_context())
            )
            return await answer
        finally:
            self._callers -= 1
            if self._callers == 0:
                self._idle.set()

    async def run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = await self._fill(first)
            await self._run_batch(batch)

    async def _fill(self, first: _Pending) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        batch = [first]
        deadline = first.enqueued_at + self._max_queue_delay
        while len(batch) < self._max_batch:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._decoding == 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if pending is None:  # stop sentinel: keep it for the run loop
                self._queue.put_nowait(None)
                break
            batch.append(pending)
        return batch

    async def _run_batch(self, batch: list[_Pending]) -> None:
        """One forward pass, traced as a span of its own (a new trace: it serves many jobs,
        so it has no single parent) linked to the span of every job in it."""
        with tracer.start_as_current_span(
            "model forward pass",
            context=otel_context.Context(),
            links=links_to(pending.caller_span for pending in batch),
            attributes={BATCH_SIZE: len(batch)},
        ) as span:
            await self._predict_batch(batch, span)

    async def _predict_batch(self, batch: list[_Pending], span: trace.Span) -> None:
        loop = asyncio.get_running_loop()
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            model = self._model()
            probabilities = await loop.run_in_executor(
                self._model_thread, model.predict, np.stack([p.pixels for p in batch])
            )
        except Exception as error:
            logger.exception("a batch of %d images failed in the model", len(batch))
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, type(error).__name__)
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_exception(error)
            return
        seconds = time.perf_counter() - started
        self._on_batch(len(batch), seconds)
        span.set_attribute(MODEL_VERSION, model.version)
        labels = list(model.labels)
        for pending, row in zip(batch, probabilities, strict=True):
            if pending.answer.done():  # the caller went away (RPC cancelled)
                continue
            best = int(np.argmax(row))
            pending.answer.set_result(
                Classified(
                    label=labels[best],
                    confidence=float(row[best]),
                    scores={label: float(p) for label, p in zip(labels, row, strict=True)},
                    model_version=model.version,
                    preprocess_ms=pending.preprocess_ms,
                    inference_ms=seconds * 1000.0,
                    batch_size=len(batch),
                    batch_started_at=started_at,
                )
            )

    async def stop(self) -> None:
        """Take no new images, finish every image already taken, then end `run`."""
        self._stopping = True
        await self._idle.wait()
        await self._queue.put(None)
        # `run` ends on the sentinel; executors are released without waiting on a
        # model thread that may still be loading.
        with contextlib.suppress(RuntimeError):
            self._preprocess_pool.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown(wait=False, cancel_futures=True)


def _timed_preprocess(image: bytes, max_pixels: int) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    pixels = preprocess(image, max_pixels)
    return pixels, (time.perf_counter() - started) * 1000.0
