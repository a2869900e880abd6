"""Model versions: the one definition the repository, the pin and every answer share."""

from __future__ import annotations

import hashlib

import pytest

from meshkit.model_repository import is_model_version, model_version


def test_a_model_version_is_the_first_12_hex_digits_of_the_content_sha256() -> None:
    content = b"a model file"
    assert model_version(content) == "sha256:" + hashlib.sha256(content).hexdigest()[:12]
    assert model_version(content) == model_version(bytes(content))
    assert model_version(content) != model_version(content + b"\0")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("sha256:aa851f6c3bda", True),
        ("sha256:AA851F6C3BDA", False),
        ("sha256:aa851f6c3bd", False),
        ("sha256:aa851f6c3bdaa", False),
        ("aa851f6c3bda", False),
        ("sha256:aa851f6c3bdz", False),
        ("", False),
    ],
)
def test_only_what_model_version_produces_is_a_version(value: str, valid: bool) -> None:
    assert is_model_version(value) is valid
