"""Wall time of each build step, printed as it ends, so slow steps show in CI logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        print(f"images: {step}: {time.monotonic() - started:.1f} s", flush=True)
