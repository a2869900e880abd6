"""Who is calling: JWTs verified against the identity provider's public keys.

The gateway verifies every token (Envoy `jwt_authn`) and each service verifies it again
here, so a call that skips the gateway gains nothing. A token is accepted only when all of
these hold:

- signed with an asymmetric algorithm (RSA, ECDSA, EdDSA) by a key of the configured JWKS
  (a file, or a URI fetched and cached); `alg: none` and HMAC are refused whatever the
  header says, because the key decides the algorithm, not the token;
- `iss` and `aud` are the configured issuer and audience;
- `exp` is in the future and `nbf`/`iat` are not, within a bounded clock skew;
- it has a subject (`sub`): the subject owns the jobs it submits.

The role is read from the `roles` claim (a list, or one string): `operator` if it holds
`operator`, else `viewer`, the default for anyone signed in. Callers without a token are
`anonymous`, admitted only where the anonymous demo mode allows (see `meshkit.access`).

Refusals say what the caller can fix (no token, expired, not valid for this service) and
nothing about which check failed beyond that: a forger learns nothing. A genuine token made
for another audience is the one PERMISSION_DENIED among them (as at the gateway: Envoy's
jwt_authn answers 403 there): the caller is known, the token just grants nothing here.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES_CLAIM: Final = "roles"
"""The claim that carries the caller's roles; Istio's edge policies read the same one."""
DEFAULT_AUDIENCE: Final = "weather-mesh"
LOCAL_ISSUER: Final = "weather-mesh-local"
"""The issuer of the tokens `make token` mints (devmesh); a cluster sets its own."""
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_CHARS: Final = 8192
"""Real tokens are well under 2 KiB; a longer one is not parsed at all."""
BEARER: Final = "bearer "


class Role(enum.IntEnum):
    """Ordered: each role may do everything the ones below it may."""

    ANONYMOUS = 0
    VIEWER = 1
    OPERATOR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Caller:
    """A verified caller. `subject` is the token's `sub`; empty for an anonymous caller."""

    subject: str
    role: Role

    @property
    def anonymous(self) -> bool:
        return self.role is Role.ANONYMOUS


ANONYMOUS: Final = Caller(subject="", role=Role.ANONYMOUS)


class UnauthenticatedError(Exception):
    """No usable token: the message says what the caller can do about it."""


class ForeignTokenError(Exception):
    """A genuine token, issued for another service (its audience): signing in again as the
    same caller does not help, so this is PERMISSION_DENIED, as Envoy's jwt_authn answers."""


class KeysUnavailableError(Exception):
    """The JWKS URI could not be fetched: not the caller's fault, worth a retry."""


TOKEN_REQUIRED = (
    "this call needs a signed-in caller: send the metadata `authorization: Bearer <token>`"
)
TOKEN_EXPIRED = "the token has expired; sign in again for a new one"
TOKEN_NOT_YET_VALID = "the token is not valid yet; check the clock of the machine that made it"
TOKEN_INVALID = "the token could not be verified for this service; sign in again"
TOKEN_FOREIGN = "the token was issued for another service (its audience); it grants nothing here"
TOKEN_MALFORMED = "the authorization metadata must be one `Bearer <token>` value"


def role_of(claims: Mapping[str, Any]) -> Role:
    """`operator` when the roles claim holds it; every other signed-in caller is a viewer."""
    roles = claims.get(ROLES_CLAIM, [])
    if isinstance(roles, str):
        roles = [roles]
    if isinstance(roles, list) and Role.OPERATOR.label in roles:
        return Role.OPERATOR
    return Role.VIEWER


def bearer_token(values: Sequence[str]) -> str | None:
    """The token from the `authorization` metadata values; None when there is none."""
    if not values:
        return None
    if len(values) > 1 or not values[0].lower().startswith(BEARER):
        raise UnauthenticatedError(TOKEN_MALFORMED)
    token = values[0][len(BEARER) :].strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise UnauthenticatedError(TOKEN_MALFORMED)
    return token


class IdentitySettings(BaseSettings):
    """How a service verifies tokens; mixed into the settings of services with public RPCs."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    auth_issuer: str = Field(
        default=LOCAL_ISSUER,
        min_length=1,
        description="The `iss` every token must carry (the identity provider's issuer).",
    )
    auth_audience: str = Field(
        default=DEFAULT_AUDIENCE,
        min_length=1,
        description="The `aud` every token must include.",
    )
    auth_jwks_file: Path | None = Field(
        default=None,
        description=(
            "JWKS file with the public keys tokens are signed with (or auth_jwks_uri; with "
            "neither, every token is refused)."
        ),
    )
    auth_jwks_uri: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="JWKS URI, fetched and cached for 5 minutes (used when no file is set).",
    )
    auth_clock_skew_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="How far `exp`/`nbf`/`iat` may be off between the token's maker and us.",
    )
    auth_anonymous_demo: bool = Field(
        default=False,
        description=(
            "Anonymous demo mode: callers without a token may Submit, GetJob, WatchJob and "
            "GiveFeedback on anonymous jobs (never ListJobs, GetStats or GetQuality). On for "
            "`make up`, off in the cluster."
        ),
    )


class _KeySet:
    """The JWKS: a file read at start, or a URI fetched (off the event loop) and cached."""

    def __init__(self, jwks_file: Path | None, jwks_uri: str | None) -> None:
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._client: jwt.PyJWKClient | None = None
        if jwks_file is not None:
            self._keys = _usable_keys(jwt.PyJWKSet.from_json(jwks_file.read_text()).keys)
        elif jwks_uri is not None:
            self._client = jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=300, timeout=5)
        else:
            self._keys = {}

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        keys = self._keys
        if keys is None:
            assert self._client is not None
            try:
                fetched = await asyncio.to_thread(self._client.get_jwk_set)
            except jwt.PyJWKClientConnectionError as error:
                raise KeysUnavailableError(
                    "the identity provider's keys are unreachable"
                ) from error
            except jwt.PyJWKClientError as error:
                raise UnauthenticatedError(TOKEN_INVALID) from error
            keys = _usable_keys(fetched.keys)
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        key = keys.get(kid or "")
        if key is None:
            raise UnauthenticatedError(TOKEN_INVALID)
        return key


def _usable_keys(keys: Sequence[jwt.PyJWK]) -> dict[str, jwt.PyJWK]:
    """Signing keys with an asymmetric algorithm, by key id (a shared secret never counts)."""
    return {
        key.key_id or "": key
        for key in keys
        if key.algorithm_name in ASYMMETRIC_ALGORITHMS and key.public_key_use in (None, "sig")
    }


class TokenVerifier:
    """Turns a bearer token into a `Caller`, or raises UnauthenticatedError."""

    def __init__(self, settings: IdentitySettings) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._leeway = settings.auth_clock_skew_seconds
        self._keys = _KeySet(settings.auth_jwks_file, settings.auth_jwks_uri)

    async def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise UnauthenticatedError(TOKEN_INVALID) from error
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise UnauthenticatedError(TOKEN_INVALID)
        kid = header.get("kid")
        key = await self._keys.key_for(kid if isinstance(kid, str) else None)
        if algorithm != key.algorithm_name:
            raise UnauthenticatedError(TOKEN_INVALID)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise UnauthenticatedError(TOKEN_EXPIRED) from error
        except jwt.InvalidAudienceError as error:
            raise ForeignTokenError(TOKEN_FOREIGN) from error
        except jwt.ImmatureSignatureError as error:
            raise UnauthenticatedError(TOKEN_NOT_YET_VALID) from error
        except jwt.InvalidTokenError as error:
            raise UnauthenticatedError(TOKEN_INVALID) from error
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise UnauthenticatedError(TOKEN_INVALID)
        return Caller(subject=subject, role=role_of(claims))
