"""Free-text request fields: bounded in bytes, no NUL, nothing invisible shown to people."""

from __future__ import annotations

import pytest

from meshkit.request_fields import InvalidFieldError, checked_key, display_text


def test_display_text_strips_control_and_bidi_characters() -> None:
    # U+202E (right-to-left override) would make this read as "photo-gpj.exe" reversed.
    assert display_text("photo\u202egpj.exe\r\n\x1b[31m", "filename", 255) == "photogpj.exe[31m"


def test_display_text_is_cut_on_a_character_boundary_in_bytes() -> None:
    cut = display_text("é" * 200, "filename", 255)
    assert len(cut.encode("utf-8")) <= 255
    assert cut == "é" * 127


@pytest.mark.parametrize("check", [display_text, checked_key])
def test_nul_is_refused_by_name_without_echoing_the_value(check: object) -> None:
    with pytest.raises(InvalidFieldError, match=r"^name must not contain NUL") as refused:
        check("secret\x00value", "name", 64)  # type: ignore[operator]
    assert "secret" not in str(refused.value)


def test_keys_over_the_byte_cap_are_refused_not_cut() -> None:
    assert checked_key("k" * 64, "idempotency_key", 64) == "k" * 64
    with pytest.raises(InvalidFieldError, match="longer than 64 bytes"):
        checked_key("€" * 22, "idempotency_key", 64)
