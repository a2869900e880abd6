"""Category "auth": what the mesh does with tokens. Issue #13 will add JWT; until then the
gateway and the services ignore them, and this category says so ("not enforced yet")
instead of passing. Once a call is refused with UNAUTHENTICATED or PERMISSION_DENIED the
row reports "enforced" and the same cases become real checks.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping

from tools.dast.checks import CaseResult, judge
from tools.dast.target import Target
from tools.proof.jobs import GET_STATS, LIST_JOBS
from weather.v1 import reporting_pb2

CATEGORY = "auth"
REFUSAL_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
NOT_ENFORCED = "not enforced yet"
ENFORCED = "enforced"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(
    header: Mapping[str, object], claims: Mapping[str, object], signature: bytes
) -> str:
    """A JWT-shaped string with whatever header, claims and signature bytes we like."""
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


def tokens(now: int) -> dict[str, str | None]:
    """Case name -> Authorization header value (None: no header at all)."""
    claims = {
        "iss": "weather-mesh-dev",
        "aud": "weather-mesh",
        "sub": "mallory",
        "roles": ["operator"],
    }
    rs256 = {"alg": "RS256", "typ": "JWT", "kid": "dev"}
    return {
        "no token": None,
        "not a JWT": "Bearer not-a-token",
        "alg none": "Bearer "
        + unsigned_token({"alg": "none", "typ": "JWT"}, {**claims, "exp": now + 600}, b""),
        "expired": "Bearer " + unsigned_token(rs256, {**claims, "exp": now - 3600}, b"\x00" * 256),
        "forged signature": "Bearer "
        + unsigned_token(rs256, {**claims, "exp": now + 600}, b"\x01" * 256),
        "wrong audience": "Bearer "
        + unsigned_token(rs256, {**claims, "aud": "someone-else", "exp": now + 600}, b"\x02" * 256),
        "HS256 with a guessable key": "Bearer "
        + unsigned_token({"alg": "HS256"}, {**claims, "exp": now + 600}, b"\x03" * 32),
        "Basic credentials": "Basic " + base64.b64encode(b"admin:admin").decode(),
    }


def verdict(results: list[CaseResult]) -> str:
    return ENFORCED if any(result.code in REFUSAL_CODES for result in results) else NOT_ENFORCED


async def run(target: Target) -> list[CaseResult]:
    """Every token against the operator-only and the listing RPC, over gRPC and gRPC-Web."""
    results: list[CaseResult] = []
    requests = {
        GET_STATS: reporting_pb2.GetStatsRequest().SerializeToString(),
        LIST_JOBS: reporting_pb2.ListJobsRequest(page_size=1).SerializeToString(),
    }
    for name, value in tokens(int(time.time())).items():
        metadata = [] if value is None else [("authorization", value)]
        for method, message in requests.items():
            for transport in (target.native, target.web):
                outcome = await target.bounded(
                    transport.call(
                        method, message, deadline=target.call_deadline, metadata=metadata
                    )
                )
                results.append(
                    judge(
                        CaseResult(
                            CATEGORY, name, transport.name, method, outcome.code, outcome.message
                        )
                    )
                )
    return results
