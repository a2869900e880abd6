"""Pipeline settings that cannot work together are refused at start, naming both."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings


def test_classifier_in_flight_limit_must_fill_a_batch() -> None:
    with pytest.raises(ValidationError, match="max_ack_pending"):
        ClassifierSettings(max_batch=64, max_ack_pending=16)


def test_dispatcher_transport_limit_must_leave_room_for_the_upload_check() -> None:
    with pytest.raises(ValidationError, match="max_receive_message_bytes"):
        DispatcherSettings(max_upload_bytes=20 * 1024 * 1024)


def test_defaults_are_consistent() -> None:
    classifier = ClassifierSettings()
    assert classifier.max_ack_pending >= classifier.max_batch
    dispatcher = DispatcherSettings()
    assert dispatcher.max_receive_message_bytes > dispatcher.max_upload_bytes


def test_dispatcher_reserve_must_hold_the_terminal_events_of_a_full_queue() -> None:
    with pytest.raises(ValidationError, match="jobs_reserve_bytes"):
        DispatcherSettings(max_queue_depth=1000, jobs_reserve_bytes=1000)


def test_dispatcher_reserve_must_leave_room_for_new_jobs() -> None:
    with pytest.raises(ValidationError, match="jobs_max_bytes"):
        DispatcherSettings(max_queue_depth=0, jobs_reserve_bytes=4096, jobs_max_bytes=4096)


def test_classifier_ack_wait_must_outlast_the_silence_between_heartbeats() -> None:
    with pytest.raises(ValidationError, match="ack_wait_seconds"):
        ClassifierSettings(ack_wait_seconds=10, progress_interval_seconds=6)
    assert ClassifierSettings(ack_wait_seconds=1).heartbeat_seconds == pytest.approx(1 / 3)
