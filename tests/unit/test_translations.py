"""Translations are gettext catalogs (Babel): counts take the plural form of the reader's
language in real rendered mails ("1 partner", "2 partners"; Serbian's three forms), every
phrase the code and the templates name (Babel's extraction) is in every catalog with the
same placeholders, and the compiled .mo files are those of the .po files."""

import io
import string
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from c2f_notifications import messages
from c2f_notifications.i18n import LANGUAGES, locale_dir
from tests.unit.test_messages import SUGGESTION, context

PACKAGE = Path(messages.__file__).parent
# As babel.cfg and the extraction command in c2f_notifications/i18n.py say.
METHODS = [("**.py", "python"), ("templates/**.j2", "jinja2")]
KEYWORDS: dict[str, Any] = {"t": None, "plural": (1, 1), "N_": None, "_": None}


def mail(language: str, kind: str, data: dict[str, Any]) -> EmailMessage:
    ctx = context(language)
    return messages.render(
        messages.compose(kind, data, ctx),
        ctx,
        to=("Ivana", "ivana@example.org"),
        message_id="m1",
        preferences_url="https://p",
        unsubscribe_url="https://u",
    ).parsed()


def digest(language: str, partners: int) -> EmailMessage:
    items = [{**SUGGESTION, "suggestion_id": f"s{n}"} for n in range(partners)]
    return mail(language, "suggestions_digest", {"items": items})


def nudge(language: str, requests: int) -> EmailMessage:
    return mail(
        language, "nudge", {"meetings": [{"id": f"mt-{n}", "requester": "them"} for n in range(requests)]}
    )


def text(email: EmailMessage) -> str:
    part = email.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def test_english_counts_one_partner_and_two_partners() -> None:
    assert str(digest("en", 1)["Subject"]) == "1 partner to meet at B2B Day"
    assert str(digest("en", 2)["Subject"]) == "2 partners to meet at B2B Day"
    assert str(nudge("en", 1)["Subject"]) == "1 meeting request is waiting for your answer"
    assert str(nudge("en", 3)["Subject"]) == "3 meeting requests are waiting for your answer"


@pytest.mark.parametrize(
    ("partners", "subject"),
    [
        (1, "1 predložen partner za sastanak na događaju B2B Day"),
        (2, "2 predložena partnera za sastanke na događaju B2B Day"),
        (4, "4 predložena partnera za sastanke na događaju B2B Day"),
        (5, "5 predloženih partnera za sastanke na događaju B2B Day"),
        (11, "11 predloženih partnera za sastanke na događaju B2B Day"),
        (21, "21 predložen partner za sastanak na događaju B2B Day"),
        (22, "22 predložena partnera za sastanke na događaju B2B Day"),
    ],
)
def test_serbian_has_three_plural_forms(partners: int, subject: str) -> None:
    email = digest("sr", partners)
    assert str(email["Subject"]) == subject
    body = text(email)
    assert body.count("Mine") == 0 and body.count("<b>Theirs</b>") == partners, "one line per partner"
    # A phrase the template itself names ({{ _("signature") }}) is in the reader's language too.
    assert "Evropsko strateško klastersko partnerstvo" in body


def test_bulgarian_and_the_others_count_in_their_own_words() -> None:
    assert str(digest("bg", 1)["Subject"]) == "1 предложен партньор за среща на B2B Day"
    assert str(digest("bg", 2)["Subject"]) == "2 предложени партньори за срещи на B2B Day"
    assert str(nudge("bg", 1)["Subject"]) == "1 заявка за среща очаква Вашия отговор"
    assert str(nudge("el", 2)["Subject"]) == "2 αιτήματα συνάντησης περιμένουν την απάντησή σας"
    assert str(nudge("es", 1)["Subject"]) == "1 solicitud de reunión espera su respuesta"
    assert str(nudge("it", 2)["Subject"]) == "2 richieste di incontro attendono la Sua risposta"


def catalog_of(language: str) -> Any:
    with (Path(locale_dir()) / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def placeholders(phrase: str | tuple[str, ...]) -> set[str]:
    forms = (phrase,) if isinstance(phrase, str) else phrase
    return {name for form in forms for _, name, _, _ in string.Formatter().parse(form) if name}


def test_every_phrase_the_code_and_templates_name_is_in_every_catalog() -> None:
    named = {
        (found[2] if isinstance(found[2], str) else found[2][0])
        for found in extract_from_dir(str(PACKAGE), METHODS, keywords=KEYWORDS)
    }
    assert {"signature", "suggestions_digest.subject", "kind.nudge"} <= named, "templates, plurals, N_"
    with (Path(locale_dir()) / "messages.pot").open("rb") as pot:
        assert {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(pot) if m.id} == named
    english = {m.id: m.string for m in catalog_of("en") if m.id}
    for language in LANGUAGES:
        catalog = catalog_of(language)
        phrases = {m.id: m.string for m in catalog if m.id}
        keys = {k if isinstance(k, str) else k[0] for k in phrases}
        assert keys == named, f"{language}: missing {named - keys}, unused {keys - named}"
        for key, phrase in phrases.items():
            forms = (phrase,) if isinstance(phrase, str) else phrase
            assert all(forms), f"{language}: {key} untranslated"
            if isinstance(key, tuple):
                assert len(forms) == catalog.num_plurals, (
                    f"{language}: {key[0]} needs {catalog.num_plurals} forms"
                )
            assert placeholders(phrase) == placeholders(english[key]), f"{language}: {key}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogs_are_those_of_the_po_files(language: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, catalog_of(language))
    committed = (Path(locale_dir()) / language / "LC_MESSAGES" / "messages.mo").read_bytes()
    assert committed == compiled.getvalue(), "run pybabel compile (c2f_notifications/i18n.py)"
