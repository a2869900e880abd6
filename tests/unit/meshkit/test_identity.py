"""Token verification and the access table, without a network (keys in a temporary dir)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from devmesh.tokens import LocalIssuer
from meshkit.access import ANONYMOUS_DEMO_METHODS, GET_STATS, LEAST_ROLE, LIST_JOBS, least_role
from meshkit.identity import (
    TOKEN_EXPIRED,
    TOKEN_FOREIGN,
    TOKEN_INVALID,
    TOKEN_MALFORMED,
    Caller,
    ForeignTokenError,
    IdentitySettings,
    Role,
    TokenVerifier,
    UnauthenticatedError,
    bearer_token,
    role_of,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    made = LocalIssuer(tmp_path / "keys")
    made.ensure_key()
    return made


@pytest.fixture
def verifier(issuer: LocalIssuer) -> TokenVerifier:
    return TokenVerifier(IdentitySettings(auth_jwks_file=issuer.jwks_path))


async def test_a_signed_token_names_the_caller_and_the_role(
    issuer: LocalIssuer, verifier: TokenVerifier
) -> None:
    assert await verifier.verify(issuer.mint("alice")) == Caller("alice", Role.VIEWER)
    assert await verifier.verify(issuer.mint("olivia", "operator")) == Caller(
        "olivia", Role.OPERATOR
    )


async def test_expiry_is_enforced_within_the_clock_skew(
    issuer: LocalIssuer, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    late_but_within_skew = issuer.mint("alice", exp=now - 10, iat=now - 100, nbf=now - 100)
    assert (await verifier.verify(late_but_within_skew)).subject == "alice"
    with pytest.raises(UnauthenticatedError, match=TOKEN_EXPIRED):
        await verifier.verify(issuer.mint("alice", exp=now - 120, iat=now - 200, nbf=now - 200))


@pytest.mark.parametrize(
    "claims", [{"iss": "https://elsewhere.example"}, {"sub": ""}, {"exp": None}]
)
async def test_wrong_issuer_no_subject_or_no_expiry_is_invalid(
    issuer: LocalIssuer, verifier: TokenVerifier, claims: dict[str, Any]
) -> None:
    token = issuer.mint("alice", **claims)
    if claims.get("exp", 0) is None:
        payload = jwt.decode(token, options={"verify_signature": False})
        del payload["exp"]
        token = jwt.encode(payload, issuer._private_key(), "ES256", {"kid": issuer.key_id()})
    with pytest.raises(UnauthenticatedError, match=TOKEN_INVALID):
        await verifier.verify(token)


async def test_a_token_for_another_audience_is_foreign(
    issuer: LocalIssuer, verifier: TokenVerifier
) -> None:
    with pytest.raises(ForeignTokenError, match=re.escape(TOKEN_FOREIGN)):
        await verifier.verify(issuer.mint("alice", aud="another-service"))


async def test_another_key_alg_none_and_hmac_with_the_public_key_are_refused(
    issuer: LocalIssuer, verifier: TokenVerifier, tmp_path: Path
) -> None:
    forged = LocalIssuer(tmp_path / "forger").mint("mallory", "operator")
    claims = jwt.decode(issuer.mint("mallory", "operator"), options={"verify_signature": False})
    unsigned = ".".join([_b64(b'{"alg":"none"}'), _b64(json.dumps(claims).encode()), ""])
    # "HS256 keyed with the public key": the classic algorithm confusion.
    signing_input = ".".join(
        _b64(json.dumps(part).encode())
        for part in ({"alg": "HS256", "kid": issuer.key_id()}, claims)
    )
    tag = hmac.new(issuer.jwks_path.read_bytes(), signing_input.encode(), hashlib.sha256)
    confused = f"{signing_input}.{_b64(tag.digest())}"
    for token in (forged, unsigned, confused, "not.a.token", "x"):
        with pytest.raises(UnauthenticatedError, match=TOKEN_INVALID):
            await verifier.verify(token)


async def test_without_keys_every_token_is_refused(issuer: LocalIssuer) -> None:
    verifier = TokenVerifier(IdentitySettings(auth_anonymous_demo=True))
    with pytest.raises(UnauthenticatedError, match=TOKEN_INVALID):
        await verifier.verify(issuer.mint("alice", "operator"))


def test_bearer_metadata_must_be_one_bearer_value() -> None:
    assert bearer_token([]) is None
    assert bearer_token(["Bearer abc"]) == "abc"
    for values in (["Basic YWRtaW46YWRtaW4="], ["Bearer a", "Bearer b"], ["Bearer "]):
        with pytest.raises(UnauthenticatedError, match=TOKEN_MALFORMED):
            bearer_token(values)


def test_roles_claim_makes_operators_and_everyone_else_a_viewer() -> None:
    assert role_of({"roles": ["operator"]}) is Role.OPERATOR
    assert role_of({"roles": "operator"}) is Role.OPERATOR
    assert role_of({"roles": ["viewer"]}) is Role.VIEWER
    assert role_of({}) is Role.VIEWER
    assert role_of({"roles": {"operator": True}}) is Role.VIEWER


def test_demo_mode_opens_submit_and_reads_by_id_only() -> None:
    assert {least_role(method, anonymous_demo=True) for method in ANONYMOUS_DEMO_METHODS} == {
        Role.ANONYMOUS
    }
    assert least_role(LIST_JOBS, anonymous_demo=True) is Role.VIEWER
    assert least_role(GET_STATS, anonymous_demo=True) is Role.OPERATOR
    assert all(
        (least_role(m, anonymous_demo=False) or Role.ANONYMOUS) >= Role.VIEWER for m in LEAST_ROLE
    )
    assert least_role("/grpc.health.v1.Health/Check", anonymous_demo=False) is None
