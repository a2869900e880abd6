"""Category "auth": tokens at the gateway, and other users' jobs.

Every case has the one answer the README ("Sign in") promises, and any other answer is a
violation; above all OK, which would mean a bad token was accepted. Tokens that are not
valid (none, not a JWT, `alg: none`, HMAC with a guessable key, expired, signed by another
key, another issuer, Basic credentials) get UNAUTHENTICATED; a genuine token for another
audience and a viewer asking for the stats get PERMISSION_DENIED. Each is sent to the
operator-only GetStats and to ListJobs, over gRPC and gRPC-Web.

Then ownership: alice submits a photo; once her own listing shows it, bob's must not.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from devmesh.tokens import LocalIssuer
from tools.dast.checks import CaseResult, judge
from tools.dast.target import Target
from tools.proof.gateway import Metadata
from tools.proof.jobs import GET_STATS, LIST_JOBS, SUBMIT, JobsClient
from tools.proof.photos import Photo
from tools.proof.tokens import bearer
from weather.v1 import reporting_pb2

CATEGORY = "auth"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
LISTED_WITHIN_SECONDS = 30.0
"""How long the owner's own listing may lag the Submit (reporting ingests asynchronously)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(
    header: Mapping[str, object], claims: Mapping[str, object], signature: bytes
) -> str:
    """A JWT-shaped string with whatever header, claims and signature bytes we like."""
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


def token_cases(issuer: LocalIssuer, forger: LocalIssuer, now: int) -> dict[str, str | None]:
    """Case name -> Authorization value (None: no header) of every token that must be
    refused UNAUTHENTICATED."""
    claims = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "mallory",
        "roles": ["operator"],
        "exp": now + 600,
    }
    es256 = {"alg": "ES256", "typ": "JWT", "kid": issuer.key_id()}
    return {
        "no token": None,
        "not a JWT": "Bearer not-a-token",
        "alg none": "Bearer " + unsigned_token({"alg": "none", "typ": "JWT"}, claims, b""),
        "expired": "Bearer "
        + issuer.mint("mallory", "operator", exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "signed by another key": "Bearer " + forger.mint("mallory", "operator"),
        "forged signature bytes": "Bearer " + unsigned_token(es256, claims, b"\x01" * 64),
        "another issuer": "Bearer " + issuer.mint("mallory", "operator", iss="https://evil.test"),
        "HS256 with a guessable key": "Bearer "
        + unsigned_token({"alg": "HS256"}, claims, b"\x03" * 32),
        "Basic credentials": "Basic " + base64.b64encode(b"admin:admin").decode(),
    }


def expectations(
    issuer: LocalIssuer, forger: LocalIssuer, now: int
) -> list[tuple[str, str | None, str, str]]:
    """(case, Authorization value, method, the one expected status)."""
    cases = [
        (name, value, method, UNAUTHENTICATED)
        for name, value in token_cases(issuer, forger, now).items()
        for method in (GET_STATS, LIST_JOBS)
    ]
    foreign = "Bearer " + issuer.mint("mallory", "operator", aud="another-service")
    viewer = "Bearer " + issuer.mint("victor")
    cases += [
        ("genuine token for another audience", foreign, GET_STATS, PERMISSION_DENIED),
        ("genuine token for another audience", foreign, LIST_JOBS, PERMISSION_DENIED),
        ("viewer asks for the stats", viewer, GET_STATS, PERMISSION_DENIED),
        ("viewer lists their jobs", viewer, LIST_JOBS, "OK"),
    ]
    return cases


def expected(result: CaseResult, code: str) -> CaseResult:
    """Judge `result` as any answer, and flag it unless it is exactly `code`."""
    judge(result)
    if result.code != code:
        result.violations.append(f"expected {code}")
    return result


async def token_results(target: Target) -> list[CaseResult]:
    requests = {
        GET_STATS: reporting_pb2.GetStatsRequest().SerializeToString(),
        LIST_JOBS: reporting_pb2.ListJobsRequest(page_size=1).SerializeToString(),
    }
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="dast-forger-") as scratch:
        forger = LocalIssuer(Path(scratch))
        for name, value, method, code in expectations(target.issuer, forger, int(time.time())):
            metadata = [] if value is None else [("authorization", value)]
            for transport in (target.native, target.web):
                outcome = await target.bounded(
                    transport.call(
                        method, requests[method], deadline=target.call_deadline, metadata=metadata
                    )
                )
                results.append(
                    expected(
                        CaseResult(
                            CATEGORY, name, transport.name, method, outcome.code, outcome.message
                        ),
                        code,
                    )
                )
    return results


async def _listed_ids(client: JobsClient) -> tuple[str, set[str]]:
    outcome, page = await client.list_jobs(100)
    return outcome.code, {job.id for job in page.jobs} if page else set()


async def ownership_results(target: Target, photo: Path) -> list[CaseResult]:
    """alice's job shows in her listing and never in bob's."""
    alice: Metadata = bearer(target.issuer.mint("dast-alice"))
    bob: Metadata = bearer(target.issuer.mint("dast-bob"))
    alices = JobsClient(target.native, target.call_deadline * 3, metadata=alice)
    image = await asyncio.to_thread(photo.read_bytes)
    submitted, job = await alices.submit(Photo("alice.jpg", image))
    submit = expected(
        CaseResult(CATEGORY, "alice submits", "grpc", SUBMIT, submitted.code, submitted.message),
        "OK",
    )
    if job is None:
        return [submit]
    submit.job_id = job.id
    own = CaseResult(CATEGORY, "alice lists her own job", "grpc", LIST_JOBS, "NOT LISTED")
    deadline = time.monotonic() + LISTED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        own.code, ids = await _listed_ids(alices)
        if job.id in ids:
            break
        own.code = "NOT LISTED" if own.code == "OK" else own.code
        await asyncio.sleep(0.5)
    expected(own, "OK")
    code, bobs_ids = await _listed_ids(JobsClient(target.native, metadata=bob))
    other = expected(CaseResult(CATEGORY, "bob lists jobs", "grpc", LIST_JOBS, code), "OK")
    if job.id in bobs_ids:
        other.violations.append("bob's listing shows alice's job")
    return [submit, own, other]


async def run(target: Target, photo: Path) -> list[CaseResult]:
    return [*await token_results(target), *await ownership_results(target, photo)]
