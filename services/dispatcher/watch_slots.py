"""How many WatchJob streams each client may hold open at once.

A stream costs the dispatcher an ordered consumer on the broker for as long as it lasts, so
one client opening thousands would starve everyone. The gateway names the client in a
header it always sets itself (`x-weather-client`: the signed-in subject, else the client
address; see envoy/envoy.yaml.tmpl); a call without it (straight to the service port,
inside the mesh) is not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

GATEWAY_CLIENT_HEADER = "x-weather-client"


class TooManyWatchesError(RuntimeError):
    """The client already holds its allowance of open WatchJob streams."""


class WatchSlots:
    """Counts open streams per client; a slot is held for the life of one stream."""

    def __init__(self, per_client: int) -> None:
        self._per_client = per_client
        self._open: Counter[str] = Counter()

    def open_streams(self, client: str) -> int:
        return self._open[client]

    @contextmanager
    def held(self, client: str | None) -> Iterator[None]:
        if client is None:
            yield
            return
        if self._open[client] >= self._per_client:
            raise TooManyWatchesError(
                f"this client already has {self._per_client} WatchJob streams open; "
                "close one (or wait for a job to finish) before watching another"
            )
        self._open[client] += 1
        try:
            yield
        finally:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]
