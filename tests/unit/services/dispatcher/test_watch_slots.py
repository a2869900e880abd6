from __future__ import annotations

import pytest

from devmesh.envoy import CLIENT_ID_HEADER
from services.dispatcher.watch_slots import GATEWAY_CLIENT_HEADER, TooManyWatchesError, WatchSlots


def test_a_client_holds_at_most_its_allowance_and_others_are_unaffected() -> None:
    slots = WatchSlots(per_client=2)
    with slots.held("address:10.0.0.1"), slots.held("address:10.0.0.1"):
        with pytest.raises(TooManyWatchesError), slots.held("address:10.0.0.1"):
            pass
        with slots.held("address:10.0.0.2"):
            assert slots.open_streams("address:10.0.0.2") == 1
    assert slots.open_streams("address:10.0.0.1") == 0
    with slots.held("address:10.0.0.1"):  # released slots are free again
        pass


def test_a_slot_is_released_when_the_stream_fails() -> None:
    slots = WatchSlots(per_client=1)
    with pytest.raises(RuntimeError), slots.held("subject:alice"):
        raise RuntimeError("stream broke")
    assert slots.open_streams("subject:alice") == 0


def test_calls_that_skip_the_gateway_are_not_counted() -> None:
    slots = WatchSlots(per_client=1)
    with slots.held(None), slots.held(None):
        pass


def test_the_dispatcher_reads_the_header_the_gateway_sets() -> None:
    assert GATEWAY_CLIENT_HEADER == CLIENT_ID_HEADER
