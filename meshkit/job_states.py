"""A job's state is the kind of its last event: the one map between the two vocabularies.

Events on the broker say what happened (`queued`, `succeeded`, `failed`); the API says where
a job is (`JobState`). The dispatcher answers GetJob from the last event, reporting stores the
kind as the row's state and answers with `JobState`: both read this map, so a new kind or
state is added in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from meshkit.contract_constants import wire_name
from weather.v1 import job_pb2

EventKind = Literal["queued", "succeeded", "failed"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
TERMINAL_KINDS: frozenset[EventKind] = frozenset({"succeeded", "failed"})
FeedbackKind = Literal["feedback"]
FEEDBACK_KIND: FeedbackKind = "feedback"
"""The one event kind that is not a state: feedback on a finished job's answer."""


def _kind_named(state_name: str) -> EventKind:
    """`JOB_STATE_QUEUED` → "queued": a state is named after the event that leads to it."""
    kind = wire_name(state_name, "JOB_STATE_")
    for known in EVENT_KINDS:
        if kind == known:
            return known
    raise RuntimeError(f"job state {state_name} has no event kind {kind!r} in {EVENT_KINDS}")


KIND_OF_JOB_STATE: Mapping[job_pb2.JobState.ValueType, EventKind] = {
    value: _kind_named(name) for name, value in job_pb2.JobState.items() if value != 0
}
JOB_STATE_OF_KIND: Mapping[str, job_pb2.JobState.ValueType] = {
    kind: state for state, kind in KIND_OF_JOB_STATE.items()
}


def is_terminal_state(state: job_pb2.JobState.ValueType) -> bool:
    """SUCCEEDED and FAILED are final: no later event changes them."""
    kind = KIND_OF_JOB_STATE.get(state)
    return kind is not None and kind in TERMINAL_KINDS
