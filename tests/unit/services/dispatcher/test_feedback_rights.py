"""Who may judge a job's answer: its owner, or anyone holding the id of an anonymous job."""

from __future__ import annotations

import pytest

from meshkit.access import GIVE_FEEDBACK, least_role
from meshkit.identity import ANONYMOUS, Caller, Role
from services.dispatcher.jobs import NotTheOwnerError, SignInRequiredError, check_may_judge

ALICE = Caller(subject="alice", role=Role.VIEWER)
BOB = Caller(subject="bob", role=Role.VIEWER)
OPERATOR = Caller(subject="olivia", role=Role.OPERATOR)


def test_the_owner_judges_an_owned_job_and_nobody_else() -> None:
    check_may_judge("alice", ALICE)
    with pytest.raises(NotTheOwnerError):
        check_may_judge("alice", BOB)
    with pytest.raises(NotTheOwnerError):
        check_may_judge("alice", OPERATOR)  # feedback is the submitter's word
    with pytest.raises(SignInRequiredError):
        check_may_judge("alice", ANONYMOUS)


def test_the_id_of_an_anonymous_job_is_enough() -> None:
    for caller in (ALICE, BOB, OPERATOR, ANONYMOUS):
        check_may_judge("", caller)


def test_give_feedback_needs_a_viewer_unless_the_demo_mode_is_on() -> None:
    assert least_role(GIVE_FEEDBACK, anonymous_demo=False) is Role.VIEWER
    assert least_role(GIVE_FEEDBACK, anonymous_demo=True) is Role.ANONYMOUS
