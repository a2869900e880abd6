"""What counts as a violation. Pure functions, so a test can feed them a bad answer.

Pass means: no INTERNAL or UNKNOWN, nothing internal leaked in a message (paths,
tracebacks, SQL, exception class names, addresses), and every refusal a documented
status: the ones the protos and README promise, plus the gateway's own HTTP 4xx for an
envelope that is not gRPC-Web at all (and, for raw frames, a connection it closes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# README "Bad input gets a status and a sentence" and the protos' method comments; the
# gateway's rate limit answers RESOURCE_EXHAUSTED, unrouted methods UNIMPLEMENTED, and
# DEADLINE_EXCEEDED is the harness's own deadline.
DOCUMENTED_CODES = frozenset(
    {
        "OK",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "UNAVAILABLE",
        "UNIMPLEMENTED",
        "DEADLINE_EXCEEDED",
        # README "Sign in": no valid token, or a role that lacks the right.
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    }
)
FORBIDDEN_CODES = frozenset({"INTERNAL", "UNKNOWN"})
LEAK_PATTERNS: dict[str, re.Pattern[str]] = {
    "traceback": re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"),
    "path": re.compile(r"(?:/[\w.@+-]+){2,}\.py\b|site-packages|/usr/(?:lib|local)/|/work/|/home/"),
    "sql": re.compile(
        r"\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b|"
        r"syntax error at or near|psycopg|relation \"\w+\"|violates \w+ constraint",
        re.IGNORECASE,
    ),
    "exception class": re.compile(r"\b[A-Z][a-z]\w*(?:Error|Exception)\b"),
    "memory address": re.compile(r"\b0x[0-9a-fA-F]{8,}\b"),
    "broker internals": re.compile(r"\$JS\.API|\bnats: "),
}


def leaks(message: str) -> list[str]:
    """The kinds of internal detail `message` gives away."""
    return [kind for kind, pattern in LEAK_PATTERNS.items() if pattern.search(message)]


def gateway_refusal(code: str) -> bool:
    """An HTTP 4xx with no gRPC status: the gateway refused the envelope itself."""
    return code.startswith("HTTP 4")


@dataclass
class CaseResult:
    """One request and what came back."""

    category: str
    case: str
    transport: str
    method: str
    code: str
    message: str = ""
    violations: list[str] = field(default_factory=list)
    job_id: str | None = None


def judge(result: CaseResult, *, closed_connection_ok: bool = False) -> CaseResult:
    """Fill `result.violations` from its code and message."""
    code = result.code
    if code in FORBIDDEN_CODES:
        result.violations.append(f"status {code}")
    elif code == "TRANSPORT":
        if not closed_connection_ok:
            result.violations.append("no answer (connection failed)")
    elif code not in DOCUMENTED_CODES and not gateway_refusal(code):
        result.violations.append(f"undocumented status {code}")
    result.violations += [f"leaks {kind}" for kind in leaks(result.message)]
    return result
