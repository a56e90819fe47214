"""What a person reads: each kind of message composed in the recipient's language, rendered
with the Jinja2 templates in `templates/` as plain text and HTML, with calendar invitations
attached where a meeting is concerned."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate, parseaddr
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, Template, select_autoescape

from c2f_notifications import calendar, mime
from c2f_notifications.i18n import N_, Words

# Sent whatever the recipient's preferences: they concern its registration or its meetings.
ESSENTIAL = frozenset(
    {
        "registration_confirmed",
        "meeting_request",
        "meeting_accepted",
        "meeting_declined",
        "meeting_cancelled",
        "meeting_dropped",
        "schedule_published",
        "meeting_scheduled",
        "meeting_moved",
    }
)
OPTIONAL = frozenset({"suggestions_digest", "reminder", "outcome_request", "recording_available", "nudge"})
# How the optional kinds are named to the reader (unsubscribe and preference pages).
KIND_NAMES = {
    "suggestions_digest": N_("kind.suggestions_digest"),
    "reminder": N_("kind.reminder"),
    "outcome_request": N_("kind.outcome_request"),
    "recording_available": N_("kind.recording_available"),
    "nudge": N_("kind.nudge"),
}
KINDS = ESSENTIAL | OPTIONAL

_templates = Environment(
    loader=PackageLoader("c2f_notifications", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    trim_blocks=False,
    keep_trailing_newline=True,
    auto_reload=False,  # the templates ship with the package: no need to stat them at every mail
    extensions=["jinja2.ext.i18n"],
)


@cache
def _template(name: str) -> Template:
    """Each template compiled once per process."""
    return _templates.get_template(name)


@dataclass
class Block:
    text: str = ""
    items: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Attachment:
    filename: str
    content: bytes
    method: str  # iTIP method: REQUEST, CANCEL


@dataclass
class Message:
    kind: str
    subject: str
    blocks: list[Block]
    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Party:
    name: str
    country: str | None = None
    attendee: str | None = None  # with consent only
    email: str | None = None  # with consent only
    contacts: list[tuple[str, str]] = field(default_factory=list)  # the company's, with consent only

    def label(self) -> str:
        who = f"{self.name} ({self.country})" if self.country else self.name
        return f"{who}, {self.attendee}" if self.attendee else who

    def reachable(self) -> list[tuple[str, str]]:
        """(name, e-mail) of whom a matched company may write to: the attendee, then the
        company's contact persons, each only with their consent."""
        attendee = [(self.attendee or self.name, self.email)] if self.email else []
        return attendee + [c for c in self.contacts if c not in attendee]


@dataclass
class Context:
    """Everything a message may mention, resolved at sending time."""

    words: Words
    recipient: dict[str, Any]
    event: dict[str, Any]
    party: Callable[[str], Party]  # participant id → how others may see it
    link: Callable[[str, str], str]  # (action, subject) → a signed URL
    sender: str

    @property
    def tz(self) -> str:
        return str(self.event.get("venue_timezone") or "UTC")

    def when(self, moment: Any) -> str:
        return self.words.when(_moment(moment), self.tz)

    def others(self, parties: list[str]) -> str:
        return self.words.join([self.party(p).label() for p in parties if p != self.recipient["_id"]])


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def compose(kind: str, data: dict[str, Any], ctx: Context) -> Message:
    return _COMPOSERS[kind](data, ctx)


def _registration_confirmed(data: dict[str, Any], ctx: Context) -> Message:
    t, event = ctx.words, ctx.event
    who = ctx.party(ctx.recipient["_id"]).name
    where = ", ".join(x for x in (event.get("venue"), event.get("city")) if x)
    if event.get("mode") == "virtual" or not where:
        intro = t(
            "registration_confirmed.online", who=who, event=event["name"], when=ctx.when(event["starts_at"])
        )
    else:
        intro = t(
            "registration_confirmed.intro",
            who=who,
            event=event["name"],
            when=ctx.when(event["starts_at"]),
            where=where,
        )
    nxt = (
        t("registration_confirmed.webinar")
        if event.get("kind") == "webinar"
        else t("registration_confirmed.next")
    )
    return Message(
        "registration_confirmed",
        t("registration_confirmed.subject", event=event["name"]),
        [Block(intro), Block(nxt)],
    )


def _suggestions_digest(data: dict[str, Any], ctx: Context) -> Message:
    t, me = ctx.words, ctx.recipient["_id"]
    items = []
    for fact in data["items"]:
        theirs = next(p for p in fact["parties"] if p["participant_id"] != me)
        other = ctx.party(theirs["participant_id"])
        why = []
        for reason in fact["reasons"]:
            key = (
                N_("suggestions_digest.reason_yours")
                if reason["offered_by"] == me
                else N_("suggestions_digest.reason_theirs")
            )
            why.append(t(key, offer=reason["offer_title"], need=reason["need_title"]))
        for signal in fact.get("signals", []):
            if signal["kind"] == "shared_markets":
                why.append(t("suggestions_digest.shared_markets", markets=t.join(signal["markets"])))
            elif signal["kind"] == "market_access" and signal.get("for") == me:
                why.append(t("suggestions_digest.market_access", markets=t.join(signal["markets"])))
            elif signal["kind"] == "connects_countries":
                why.append(t("suggestions_digest.connects", countries=t.join(signal["countries"])))
        line = f"{theirs['company_name']} ({theirs['country']}): " + "; ".join(why)
        if other.reachable():
            line += ". " + _contacts(t, other)
        items.append(line)
    event = ctx.event["name"]
    return Message(
        "suggestions_digest",
        t.plural("suggestions_digest.subject", len(items), event=event),
        [Block(t("suggestions_digest.intro", event=event), items=items), Block(t("suggestions_digest.next"))],
    )


def _meeting_request(data: dict[str, Any], ctx: Context) -> Message:
    t = ctx.words
    requester = ctx.party(data["requester"])
    event = ctx.event["name"]
    blocks = [
        Block(
            t(
                "meeting_request.intro",
                requester=requester.label(),
                country=requester.country or "",
                event=event,
            )
        )
    ]
    if data.get("message"):
        blocks.append(Block(t("meeting_request.message", message=data["message"])))
    meeting = data["meeting_id"]
    blocks.append(
        Block(
            actions=[
                (t("meeting_request.accept"), ctx.link("accept", meeting)),
                (t("meeting_request.decline"), ctx.link("decline", meeting)),
            ]
        )
    )
    return Message(
        "meeting_request", t("meeting_request.subject", requester=requester.name, event=event), blocks
    )


def _contacts(t: Words, party: Party) -> str:
    """Each person of `party` a partner may write to, as "Contact: name <e-mail>"."""
    reach = party.reachable()
    return "; ".join(t("suggestions_digest.contact", name=name, email=email) for name, email in reach)


def _answered(kind: str, subject: str, intro: str) -> Callable[[dict[str, Any], Context], Message]:
    def compose_answer(data: dict[str, Any], ctx: Context) -> Message:
        t, event = ctx.words, ctx.event["name"]
        other = ctx.others(data["parties"])
        blocks = [Block(t(intro, other=other, event=event))]
        if kind == "meeting_accepted":
            partners = [ctx.party(p) for p in data["parties"] if p != ctx.recipient["_id"]]
            reach = [f"{p.name}: {_contacts(t, p)}" for p in partners if p.reachable()]
            if reach:
                blocks.append(Block(items=reach))
            blocks.append(Block(t("meeting_accepted.next")))
        return Message(kind, t(subject, other=other, event=event), blocks)

    return compose_answer


def _one_meeting(kind: str, subject: str, intro: str) -> Callable[[dict[str, Any], Context], Message]:
    """A meeting placed, moved, cancelled or dropped: the words and the calendar update."""

    def compose_meeting(data: dict[str, Any], ctx: Context) -> Message:
        t, event = ctx.words, ctx.event["name"]
        other = ctx.others(data["parties"])
        placed = data.get("placement")
        values = {"other": other, "event": event}
        if placed:
            values |= {"when": ctx.when(placed["starts_at"]), "table": placed["table"]}
        blocks = [Block(t(intro, **values))]
        if kind == "meeting_cancelled" and placed:
            blocks.append(Block(t("meeting_cancelled.slot", **values)))
        message = Message(kind, t(subject, **values), blocks)
        if placed:
            method = "CANCEL" if kind in ("meeting_cancelled", "meeting_dropped") else "REQUEST"
            message.attachments.append(_invite(ctx, method, [data]))
        message.notes.append(t("times_in", tz=ctx.tz))
        return message

    return compose_meeting


def _schedule_published(data: dict[str, Any], ctx: Context) -> Message:
    t, event = ctx.words, ctx.event["name"]
    meetings = sorted(data["meetings"], key=lambda m: str(m["placement"]["starts_at"]))
    items = [
        t(
            "schedule_published.item",
            when=ctx.when(m["placement"]["starts_at"]),
            table=m["placement"]["table"],
            **{"with": ctx.others(m["parties"])},
        )
        for m in meetings
    ]
    message = Message(
        "schedule_published",
        t("schedule_published.subject", event=event),
        [
            Block(t("schedule_published.intro", event=event), items=items),
            Block(t("schedule_published.print")),
        ],
        notes=[t("times_in", tz=ctx.tz)],
    )
    message.attachments.append(_invite(ctx, "REQUEST", meetings))
    return message


def _reminder(data: dict[str, Any], ctx: Context) -> Message:
    t, placed = ctx.words, data["placement"]
    values = {
        "other": ctx.others(data["parties"]),
        "event": ctx.event["name"],
        "when": ctx.when(placed["starts_at"]),
        "table": placed["table"],
        "lead": t.lead(data["offset"]),
    }
    return Message(
        "reminder",
        t("reminder.subject", **values),
        [Block(t("reminder.intro", **values))],
        notes=[t("times_in", tz=ctx.tz)],
    )


def _outcome_request(data: dict[str, Any], ctx: Context) -> Message:
    t, event = ctx.words, ctx.event["name"]
    blocks = [Block(t("outcome_request.intro"))]
    for m in sorted(data["meetings"], key=lambda m: str(m["placement"]["starts_at"])):
        label = t(
            "outcome_request.item",
            when=ctx.when(m["placement"]["starts_at"]),
            **{"with": ctx.others(m["parties"])},
        )
        blocks.append(Block(label, actions=[(t("outcome_request.record"), ctx.link("outcome", m["id"]))]))
    return Message("outcome_request", t("outcome_request.subject", event=event), blocks)


def _recording_available(data: dict[str, Any], ctx: Context) -> Message:
    t, event = ctx.words, ctx.event["name"]
    return Message(
        "recording_available",
        t("recording_available.subject", event=event),
        [Block(t("recording_available.intro", event=event), actions=[(data["url"], data["url"])])],
    )


def _nudge(data: dict[str, Any], ctx: Context) -> Message:
    t, event = ctx.words, ctx.event["name"]
    blocks = [Block(t("nudge.intro", event=event))]
    for m in data["meetings"]:
        blocks.append(
            Block(
                ctx.party(m["requester"]).label(),
                actions=[
                    (t("meeting_request.accept"), ctx.link("accept", m["id"])),
                    (t("meeting_request.decline"), ctx.link("decline", m["id"])),
                ],
            )
        )
    return Message("nudge", t.plural("nudge.subject", len(data["meetings"])), blocks)


def _invite(ctx: Context, method: str, meetings: list[dict[str, Any]]) -> Attachment:
    event = ctx.event
    entries = []
    for m in meetings:
        placed = m["placement"]
        other = ctx.others(m["parties"])
        entries.append(
            {
                "id": m["id"],
                "sequence": m["sequence"],
                "starts_at": _moment(placed["starts_at"]),
                "ends_at": _moment(placed["ends_at"]),
                "summary": f"{event['name']}: {other}",
                "location": ", ".join(
                    x for x in (placed["table"], event.get("venue"), event.get("city")) if x
                ),
                "description": f"{event['name']} · {placed['table']} · {other}",
            }
        )
    content = calendar.invitation(method, entries, ctx.tz, _address(ctx.sender), ctx.recipient["email"])
    name = "cancel.ics" if method == "CANCEL" else "invite.ics"
    return Attachment(name, content, method)


def _address(sender: str) -> str:
    return sender.rsplit("<", 1)[-1].rstrip(">").strip()


_COMPOSERS: dict[str, Callable[[dict[str, Any], Context], Message]] = {
    "registration_confirmed": _registration_confirmed,
    "suggestions_digest": _suggestions_digest,
    "meeting_request": _meeting_request,
    "meeting_accepted": _answered(
        "meeting_accepted", N_("meeting_accepted.subject"), N_("meeting_accepted.intro")
    ),
    "meeting_declined": _answered(
        "meeting_declined", N_("meeting_declined.subject"), N_("meeting_declined.intro")
    ),
    "meeting_cancelled": _one_meeting(
        "meeting_cancelled", N_("meeting_cancelled.subject"), N_("meeting_cancelled.intro")
    ),
    "meeting_dropped": _one_meeting(
        "meeting_dropped", N_("meeting_dropped.subject"), N_("meeting_dropped.intro")
    ),
    "meeting_scheduled": _one_meeting(
        "meeting_scheduled", N_("meeting_scheduled.subject"), N_("meeting_scheduled.intro")
    ),
    "meeting_moved": _one_meeting("meeting_moved", N_("meeting_moved.subject"), N_("meeting_moved.intro")),
    "schedule_published": _schedule_published,
    "reminder": _reminder,
    "outcome_request": _outcome_request,
    "recording_available": _recording_available,
    "nudge": _nudge,
}


def render(
    message: Message,
    ctx: Context,
    *,
    to: tuple[str, str],
    message_id: str,
    preferences_url: str,
    unsubscribe_url: str | None,
) -> mime.Mail:
    """The e-mail to (name, address) `to`: plain text and HTML alternatives, then the calendar
    files."""
    t = ctx.words
    footer = [t("footer_why", event=ctx.event["name"])]
    links = [(t("footer_preferences"), preferences_url)]
    if unsubscribe_url is None:
        footer.append(t("essential"))
    else:
        links.append((t("footer_unsubscribe"), unsubscribe_url))
    values = {
        "language": t.language,
        "subject": message.subject,
        "greeting": t("greeting", name=ctx.recipient["name"]),
        "blocks": message.blocks,
        "notes": message.notes,
        "gettext": t,  # the phrases the templates name themselves: {{ _("signature") }}
        "footer": footer + [f"{label}: {url}" for label, url in links],
        "footer_links": links,
    }
    sender_name, sender = _parsed_address(ctx.sender)
    headers: list[tuple[str, str | mime.Address]] = [
        ("Date", formatdate(usegmt=True)),
        ("From", (sender_name, sender)),
        # Names typed by people (an event's, a recipient's) go on one line.
        ("To", (_one_line(to[0]), to[1])),
        ("Subject", _one_line(message.subject)),
        # A stable Message-ID lets a mail system recognise a resend of the same message.
        ("Message-ID", f"<{message_id}@c2future-match>"),
        ("X-C2F-Kind", message.kind),
        ("Content-Language", t.language),
    ]
    if unsubscribe_url is not None:
        headers.append(("List-Unsubscribe", f"<{unsubscribe_url}>"))
        # RFC 8058: a mail client may unsubscribe with one POST to that URL (our POST mutes),
        # as large mailbox providers ask of anyone who sends in bulk.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    data = mime.write(
        headers,
        text=_template("message.txt.j2").render(values),
        html=_template("message.html.j2").render({**values, "footer": footer}),
        attachments=[
            mime.Attachment(a.filename, a.content, "text/calendar", {"method": a.method})
            for a in message.attachments
        ],
    )
    return mime.Mail(sender, [to[1]], data, utf8=not (sender + to[1]).isascii())


def _one_line(text: str) -> str:
    """`text` with every run of white space (line breaks too) as one space."""
    return " ".join(text.split())


@cache
def _parsed_address(value: str) -> tuple[str, str]:
    """(name, address) of a configured `Name <address>`."""
    return parseaddr(value)
