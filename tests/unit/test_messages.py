"""Every kind of message, in every language: composed and rendered without a missing phrase,
with plain-text and HTML parts, dates written the local way in the venue's time zone, and
nothing a participant typed able to break the HTML."""

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import icalendar
import pytest

from c2f_notifications import messages
from c2f_notifications.i18n import LANGUAGES, Words, catalog

START = datetime(2027, 3, 16, 7, 20, tzinfo=UTC)  # 09:20 in Sofia
PLACED = {
    "slot_id": "2027-03-16T09:20",
    "starts_at": START,
    "ends_at": START + timedelta(minutes=20),
    "table": "Table 3",
}
MEETING = {
    "id": "mt-1",
    "meeting_id": "mt-1",
    "event_id": "ev",
    "parties": ["me", "them"],
    "placement": PLACED,
    "sequence": 2,
}
SUGGESTION = {
    "suggestion_id": "s1",
    "event_id": "ev",
    "parties": [
        {"participant_id": "me", "company_id": "c1", "company_name": "Mine", "country": "BG"},
        {"participant_id": "them", "company_id": "c2", "company_name": "<b>Theirs</b>", "country": "ES"},
    ],
    "reasons": [
        {
            "offered_by": "them",
            "offer_title": "Sensores",
            "needed_by": "me",
            "need_title": "Сензори",
            "basis": "x",
        }
    ],
    "signals": [
        {"kind": "shared_markets", "markets": ["MX", "CO"]},
        {"kind": "connects_countries", "countries": ["BG", "ES"]},
    ],
}
DATA: dict[str, dict[str, Any]] = {
    "registration_confirmed": {},
    "suggestions_digest": {"items": [SUGGESTION]},
    "meeting_request": {
        "meeting_id": "mt-1",
        "parties": ["them", "me"],
        "requester": "them",
        "message": "<script>alert(1)</script>",
    },
    "meeting_accepted": {"meeting_id": "mt-1", "parties": ["me", "them"]},
    "meeting_declined": {"meeting_id": "mt-1", "parties": ["me", "them"]},
    "meeting_cancelled": MEETING,
    "meeting_dropped": MEETING,
    "meeting_scheduled": MEETING,
    "meeting_moved": MEETING,
    "schedule_published": {"meetings": [MEETING]},
    "reminder": {**MEETING, "offset": 900},
    "outcome_request": {"meetings": [MEETING]},
    "recording_available": {"url": "https://example.org/recording"},
    "nudge": {"meetings": [{"id": "mt-1", "requester": "them"}]},
}


def context(language: str) -> messages.Context:
    people = {
        "me": messages.Party("Mine", "BG"),
        "them": messages.Party("<b>Theirs</b>", "ES", attendee="Elena", email="elena@example.org"),
    }
    return messages.Context(
        words=Words(language),
        recipient={"_id": "me", "name": "Ivana", "email": "ivana@example.org"},
        event={
            "name": "B2B Day",
            "venue_timezone": "Europe/Sofia",
            "starts_at": START,
            "venue": "Hall",
            "city": "Sofia",
        },
        party=lambda pid: people[pid],
        link=lambda action, subject: f"https://links.example/{action}/{subject}",
        sender="C2Future Match <noreply@c2future.example>",
    )


def mail(
    kind: str,
    ctx: messages.Context,
    data: dict[str, Any] | None = None,
    to: tuple[str, str] = ("Ivana", "ivana@example.org"),
    unsubscribe_url: str | None = None,
) -> EmailMessage:
    """A mail of `kind` as a mail client reads it."""
    return messages.render(
        messages.compose(kind, DATA[kind] if data is None else data, ctx),
        ctx,
        to=to,
        message_id=f"{kind}@test",
        preferences_url="https://p",
        unsubscribe_url=unsubscribe_url,
    ).parsed()


def test_every_catalog_has_every_phrase_with_the_same_placeholders() -> None:
    english = catalog("en")
    for language in LANGUAGES:
        assert set(catalog(language)) == set(english), language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(messages.KINDS))
def test_every_kind_renders_in_every_language(kind: str, language: str) -> None:
    ctx = context(language)
    email = mail(kind, ctx)
    assert email["Content-Language"] == language and email["X-C2F-Kind"] == kind
    text = email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = email.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Ivana" in text and "Ivana" in html
    assert "<script>" not in html and "<b>Theirs</b>" not in html, "what participants typed is escaped"
    timed = {
        "meeting_cancelled",
        "meeting_scheduled",
        "meeting_moved",
        "schedule_published",
        "reminder",
        "outcome_request",
    }
    if kind in timed:
        assert "09:20" in text, "venue time, not UTC"
        assert "07:20" not in text


def test_the_calendar_file_keeps_the_uid_and_sequence_and_the_venues_zone() -> None:
    ctx = context("en")
    email = mail("meeting_moved", ctx, MEETING)
    [attachment] = list(email.iter_attachments())
    assert attachment.get_content_type() == "text/calendar" and attachment.get_param("method") == "REQUEST"
    cal = icalendar.Calendar.from_ical(attachment.get_content())
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == "mt-1@c2future-match" and event.decoded("SEQUENCE") == 2
    assert str(event.decoded("DTSTART").tzinfo) == "Europe/Sofia"
    assert event.decoded("DTSTART").hour == 9


def test_dates_and_lists_are_written_the_local_way() -> None:
    assert Words("es").when(START, "Europe/Madrid") == "martes, 16 de marzo de 2027, 08:20"
    assert Words("bg").join(["MX", "CO"]) == "MX и CO"
    assert Words("xx").language == "en"


def plain_text(kind: str, ctx: messages.Context) -> str:
    email = mail(kind, ctx, to=("", "i@example.org"))
    return str(email.get_body(("plain",)).get_content())  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["suggestions_digest", "meeting_accepted"])
def test_partners_see_whom_they_may_write_to_and_no_one_else(kind: str) -> None:
    ctx = context("en")
    seen = {
        "me": messages.Party("Mine", "BG"),
        "them": messages.Party(
            "Theirs", "ES", contacts=[("Ana Ruiz", "ana@theirs.example"), ("Luis", "luis@theirs.example")]
        ),
    }
    ctx.party = lambda pid: seen[pid]
    text = plain_text(kind, ctx)
    assert "Contact: Ana Ruiz <ana@theirs.example>; Contact: Luis <luis@theirs.example>" in text
    seen["them"] = messages.Party("Theirs", "ES", attendee="Elena", email="elena@example.org")
    assert "Contact: Elena <elena@example.org>" in plain_text(kind, ctx)
    seen["them"] = messages.Party("Theirs", "ES")  # nobody agreed to be shown
    text = plain_text(kind, ctx)
    assert "Contact:" not in text and "theirs.example" not in text and "elena@" not in text


def test_names_typed_with_line_breaks_stay_on_their_header_line() -> None:
    ctx = context("en")
    ctx.event["name"] = "B2B\r\nBcc: everyone@example.org"
    email = mail("registration_confirmed", ctx, {}, to=("Ivana\nPetrova", "ivana@example.org"))
    assert "Bcc" not in email and "B2B Bcc: everyone@example.org" in email["Subject"]
    [to] = email["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Ivana Petrova", "ivana@example.org")


def test_optional_mails_offer_one_click_unsubscribe_and_every_mail_is_dated() -> None:
    ctx = context("en")
    optional = mail("suggestions_digest", ctx, unsubscribe_url="https://n.example/unsubscribe/t")
    essential = mail("reminder", ctx)
    assert optional["List-Unsubscribe"] == "<https://n.example/unsubscribe/t>"
    assert optional["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in essential and "List-Unsubscribe-Post" not in essential
    for dated in (optional, essential):
        assert abs((datetime.now(UTC) - dated["Date"].datetime).total_seconds()) < 60
