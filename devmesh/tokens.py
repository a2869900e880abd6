"""The local identity provider: one signing key under `.data/`, its JWKS, and minted tokens.

`make token ROLE=operator SUB=alice` prints a short-lived token signed by this key, and
`make up` hands the key's public half (the JWKS file) to Envoy and to the services, so the
token works against the local mesh and nowhere else. The key pair is made on first use
(ECDSA P-256, ES256), readable by its owner only, and never committed (`.data/` is ignored).
The integration tests make their own in a temporary directory with the same code.

Issuer, audience and the roles claim are the ones the services verify (`meshkit.identity`),
read from there, never re-typed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from meshkit.identity import DEFAULT_AUDIENCE, LOCAL_ISSUER, ROLES_CLAIM, Role

ALGORITHM: Final = "ES256"
PRIVATE_KEY_FILE: Final = "signing-key.pem"
JWKS_FILE: Final = "jwks.json"
DEFAULT_LIFETIME_SECONDS: Final = 3600
MAX_LIFETIME_SECONDS: Final = 12 * 3600
"""Local tokens are short-lived by design: a leaked one stops working the same day."""
SIGNED_IN_ROLES: Final = tuple(role.label for role in Role if role is not Role.ANONYMOUS)


class LocalIssuer:
    """Signs tokens with the key in `directory`, making the key (and its JWKS) if missing."""

    def __init__(
        self, directory: Path, issuer: str = LOCAL_ISSUER, audience: str = DEFAULT_AUDIENCE
    ) -> None:
        self.directory = directory
        self.issuer = issuer
        self.audience = audience

    @property
    def jwks_path(self) -> Path:
        return self.directory / JWKS_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / PRIVATE_KEY_FILE

    def ensure_key(self) -> Path:
        """The JWKS file, after making the key pair if this is the first use."""
        if not self.key_path.is_file():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            descriptor = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as key_file:
                key_file.write(pem)
        if not self.jwks_path.is_file():
            self.jwks_path.write_text(json.dumps({"keys": [self._public_jwk()]}, indent=2))
        return self.jwks_path

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key_path} is not an EC private key")
        return key

    def key_id(self) -> str:
        """A stable id for the key: part of the hash of its public half."""
        public = self._private_key().public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()[:16]

    def _public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self._private_key().public_key(), as_dict=True)
        return {**jwk, "kid": self.key_id(), "alg": ALGORITHM, "use": "sig"}

    def mint(
        self,
        subject: str,
        role: str = Role.VIEWER.label,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        **overrides: Any,
    ) -> str:
        """A signed token for `subject` with `role`; `overrides` replace or add claims
        (tests make expired or foreign-audience tokens this way)."""
        if role not in SIGNED_IN_ROLES:
            raise ValueError(f"role must be one of {', '.join(SIGNED_IN_ROLES)}, not {role!r}")
        if not subject.strip():
            raise ValueError("the subject must not be empty")
        if not 0 < lifetime_seconds <= MAX_LIFETIME_SECONDS:
            raise ValueError(f"lifetime must be 1..{MAX_LIFETIME_SECONDS} seconds")
        self.ensure_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            ROLES_CLAIM: [role],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            **overrides,
        }
        return jwt.encode(
            claims, self._private_key(), algorithm=ALGORITHM, headers={"kid": self.key_id()}
        )
