"""Job fates and report figures, from answers made up here."""

from __future__ import annotations

from tools.chaos.accounting import PhaseAccount
from tools.proof.fates import FAILED, LOST, STUCK, SUCCEEDED, verdict
from tools.proof.gateway import Outcome
from tools.proof.report import percentile, table
from weather.v1 import job_pb2


def test_fate_follows_the_last_getjob() -> None:
    ok = Outcome("OK")
    assert verdict(ok, job_pb2.Job(state=job_pb2.JOB_STATE_SUCCEEDED)).fate == SUCCEEDED
    assert verdict(ok, job_pb2.Job(state=job_pb2.JOB_STATE_FAILED)).fate == FAILED
    assert verdict(ok, job_pb2.Job(state=job_pb2.JOB_STATE_QUEUED)).fate == STUCK
    lost = verdict(Outcome("NOT_FOUND", "no job"), None)
    assert (lost.fate, lost.detail) == (LOST, "NOT_FOUND no job")


def test_a_phase_is_clean_only_without_loss_stuck_duplicate_or_unrecorded_jobs() -> None:
    row = PhaseAccount("fault")
    row.add_fates({"a": verdict(Outcome("OK"), job_pb2.Job(state=job_pb2.JOB_STATE_SUCCEEDED))})
    assert row.clean
    assert row.terminal == 1
    row.add_fates({"b": verdict(Outcome("NOT_FOUND"), None)})
    assert not row.clean
    assert row.lost_jobs == {"b": "NOT_FOUND"}


def test_percentile_is_a_measured_value() -> None:
    values = [0.1 * n for n in range(1, 101)]
    assert percentile(values, 0.5) == values[49]
    assert percentile(values, 0.99) == values[98]
    assert percentile([], 0.5) is None


def test_table_aligns_numbers_right() -> None:
    rendered = table(["name", "n"], [["a", 5], ["bb", 10]]).splitlines()
    assert rendered[2] == "a      5"
    assert rendered[3] == "bb    10"
