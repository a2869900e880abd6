"""The README documents what the code does: its settings table is generated from the code."""

from pathlib import Path

from tools.settings_doc import BEGIN_MARKER, END_MARKER, service_settings_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_settings_table_matches_the_settings_classes() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN_MARKER in text, "README lost its settings markers"
    assert END_MARKER in text, "README lost its settings markers"
    documented = text.split(BEGIN_MARKER, 1)[1].split(END_MARKER, 1)[0].strip()
    assert documented == service_settings_table(), (
        "README settings table is stale: run `make settings-doc` and paste its output"
    )


def test_every_setting_has_a_description() -> None:
    for row in service_settings_table().splitlines()[2:]:
        meaning = row.rsplit("|", 2)[-2].strip()
        assert meaning, f"undocumented setting: {row}"
