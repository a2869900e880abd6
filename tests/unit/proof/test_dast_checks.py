"""The DAST's judge flags what it must, and only that."""

from __future__ import annotations

import pytest

from tools.dast.auth import expected
from tools.dast.checks import CaseResult, judge
from tools.dast.envelopes import cors_verdict
from tools.proof.gateway import Outcome


def answer(code: str, message: str = "", category: str = "protobuf") -> CaseResult:
    return judge(CaseResult(category, "case", "grpc", "/m", code, message))


@pytest.mark.parametrize(
    "message",
    [
        'Traceback (most recent call last):\n  File "/app/x.py", line 3',
        "could not open /usr/lib/python3/site-packages/PIL/Image.py",
        'syntax error at or near "x"',
        "ValueError: year 10000 is out of range",
        "<object at 0x7f3a2b1c9d40>",
    ],
)
def test_a_message_that_leaks_internals_is_a_violation(message: str) -> None:
    assert any(
        violation.startswith("leaks")
        for violation in answer("INVALID_ARGUMENT", message).violations
    )


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN"])
def test_internal_and_unknown_are_violations(code: str) -> None:
    assert answer(code, "something broke").violations == [f"status {code}"]


def test_a_documented_refusal_with_a_plain_message_passes() -> None:
    assert (
        answer(
            "INVALID_ARGUMENT", "the upload is not a JPEG, PNG, GIF, WebP or BMP image"
        ).violations
        == []
    )


def test_gateway_http_refusal_passes_but_an_undocumented_grpc_status_does_not() -> None:
    assert answer("HTTP 431").violations == []
    assert answer("DATA_LOSS").violations == ["undocumented status DATA_LOSS"]


def test_a_dropped_connection_is_a_violation_except_for_raw_frames() -> None:
    assert answer("TRANSPORT").violations
    frames = judge(CaseResult("frames", "c", "raw", "/m", "TRANSPORT"), closed_connection_ok=True)
    assert frames.violations == []


def test_cors_flags_a_granted_foreign_origin_and_a_refused_allowed_one() -> None:
    granted = Outcome(
        "HTTP 200", http_status=200, headers={"access-control-allow-origin": "http://evil.example"}
    )
    assert cors_verdict("http://evil.example", False, granted)
    assert cors_verdict("http://ui.example", True, Outcome("HTTP 200", headers={}))
    wildcard = Outcome("HTTP 200", headers={"access-control-allow-origin": "*"})
    assert cors_verdict("http://evil.example", False, wildcard) == ["allow-origin is *"]
    assert cors_verdict("http://evil.example", False, Outcome("HTTP 200", headers={})) == []


def test_an_accepted_bad_token_or_the_wrong_refusal_is_a_violation() -> None:
    def auth_case(code: str) -> CaseResult:
        return CaseResult("auth", "forged", "grpc", "/m", code, "plain words")

    assert expected(auth_case("UNAUTHENTICATED"), "UNAUTHENTICATED").violations == []
    assert expected(auth_case("OK"), "UNAUTHENTICATED").violations == ["expected UNAUTHENTICATED"]
    assert expected(auth_case("PERMISSION_DENIED"), "UNAUTHENTICATED").violations == [
        "expected UNAUTHENTICATED"
    ]
