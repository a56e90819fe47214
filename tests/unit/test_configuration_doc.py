"""docs/configuration.md is what `c2f config-reference` writes from the settings classes."""

import re
from pathlib import Path

from c2f_cli import settings_doc
from c2f_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


def test_the_configuration_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == settings_doc.reference(app), (
        "docs/configuration.md differs from the settings classes; regenerate it with "
        f"`{settings_doc.REGENERATE}` and commit the result"
    )


def test_every_setting_has_a_description() -> None:
    assert not settings_doc.missing_descriptions(), "add description= to these Field()s"


def test_every_variable_the_command_reads_is_documented() -> None:
    names = re.compile(r"\bC2F_[A-Z][A-Z_]*[A-Z]\b")
    documented = set(names.findall(settings_doc.reference(app)))
    read: set[str] = set()
    for source in (ROOT / "cli" / "c2f_cli").glob("*.py"):
        if source.name != "settings_doc.py":
            read |= set(names.findall(source.read_text()))
    assert read <= documented, f"not in docs/configuration.md: {sorted(read - documented)}"


def test_variables_are_named_as_pydantic_settings_reads_them() -> None:
    reference = DOC.read_text(encoding="utf-8")
    # A field with an alias is read only under the alias (no prefix added); others with the prefix.
    assert "`C2F_KAFKA_BOOTSTRAP`" in reference and "C2F_MATCHING_KAFKA_BOOTSTRAP" not in reference
    assert "`C2F_MATCHING_OPERATOR_TOKEN` or `C2F_OPERATOR_TOKEN`" in reference
    assert "`C2F_NOTIFICATIONS_MAX_ATTEMPTS` | int | `8`" in reference
