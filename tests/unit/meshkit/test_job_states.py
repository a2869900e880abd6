"""Event kinds and job states are two names for the same thing, read from the contract."""

from __future__ import annotations

from meshkit.job_states import (
    EVENT_KINDS,
    JOB_STATE_OF_KIND,
    KIND_OF_JOB_STATE,
    TERMINAL_KINDS,
    is_terminal_state,
)
from weather.v1 import job_pb2


def test_every_job_state_of_the_contract_has_an_event_kind_and_back() -> None:
    named_states = {value for value in job_pb2.JobState.values() if value != 0}
    assert set(KIND_OF_JOB_STATE) == named_states
    assert set(KIND_OF_JOB_STATE.values()) == set(EVENT_KINDS)
    for state, kind in KIND_OF_JOB_STATE.items():
        assert JOB_STATE_OF_KIND[kind] == state
        assert job_pb2.JobState.Name(state) == f"JOB_STATE_{kind.upper()}"


def test_only_succeeded_and_failed_are_terminal() -> None:
    assert {"succeeded", "failed"} == TERMINAL_KINDS
    assert is_terminal_state(job_pb2.JOB_STATE_SUCCEEDED)
    assert is_terminal_state(job_pb2.JOB_STATE_FAILED)
    assert not is_terminal_state(job_pb2.JOB_STATE_QUEUED)
    assert not is_terminal_state(job_pb2.JOB_STATE_UNSPECIFIED)
