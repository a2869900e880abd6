"""The label set and the upload cap come from the contract, in the forms code uses."""

from __future__ import annotations

from meshkit.contract_constants import LABELS, MAX_UPLOAD_BYTES, wire_name
from weather.v1 import defaults_pb2, job_pb2


def test_labels_are_the_contract_label_names_in_model_output_order() -> None:
    assert LABELS == ("cloudy", "rain", "shine", "sunrise")
    assert [job_pb2.Label.Value(f"LABEL_{label.upper()}") for label in LABELS] == [1, 2, 3, 4]


def test_a_contract_enum_name_is_spelled_in_lower_case_without_its_prefix() -> None:
    assert wire_name("LABEL_SUNRISE", "LABEL_") == "sunrise"
    assert wire_name("JOB_STATE_QUEUED", "JOB_STATE_") == "queued"


def test_the_upload_cap_is_the_contract_limit() -> None:
    assert MAX_UPLOAD_BYTES == defaults_pb2.LIMIT_MAX_UPLOAD_BYTES == 10 * 1024 * 1024
