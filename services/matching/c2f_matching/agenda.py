"""A participant's agenda at an event, as an iCalendar file and as a printable page.

Times are shown in the venue's time zone and labelled with it. Each meeting keeps one UID for
its whole life; SEQUENCE grows with every move, and a meeting that was called off stays in
the calendar as STATUS:CANCELLED, so calendar programs update rather than duplicate."""

from datetime import UTC, date, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as VEvent
from pydantic import BaseModel, Field

PRODID = "-//C2Future Match//Agenda//EN"
UID_DOMAIN = "c2future-match"


class AgendaItem(BaseModel):
    meeting_id: str
    status: str = Field(description="scheduled, cancelled (was scheduled), or waiting for a slot")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    local_start: str | None = Field(None, description="Venue time, e.g. 2027-03-16 09:20")
    local_end: str | None = None
    table: str | None = None
    with_: list[dict[str, Any]] = Field(alias="with", description="The other parties")
    message: str | None = None
    sequence: int = 0


class Agenda(BaseModel):
    participant_id: str
    name: str
    event_id: str
    event_name: str
    venue: str | None = None
    city: str | None = None
    timezone: str
    link: str | None = None
    items: list[AgendaItem]


def uid(meeting_id: str) -> str:
    return f"{meeting_id}@{UID_DOMAIN}"


def ics(agenda: Agenda, now: datetime | None = None) -> bytes:
    zone = ZoneInfo(agenda.timezone)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"{agenda.event_name} — {agenda.name}")
    cal.add("x-wr-timezone", agenda.timezone)
    stamp = now or datetime.now(UTC)
    for item in agenda.items:
        if item.starts_at is None or item.ends_at is None:
            continue  # not in the schedule yet: nothing to put in a calendar
        event = VEvent()
        event.add("uid", uid(item.meeting_id))
        event.add("sequence", item.sequence)
        event.add("dtstamp", stamp)
        event.add("dtstart", item.starts_at.astimezone(zone))
        event.add("dtend", item.ends_at.astimezone(zone))
        event.add("summary", f"Meeting: {_names(item)}")
        where = ", ".join(x for x in (item.table, agenda.venue, agenda.city) if x)
        if where:
            event.add("location", where)
        description = [f"{agenda.event_name}: {item.table or ''} with {_names(item)}"]
        if agenda.link:
            description.append(agenda.link)
        event.add("description", "\n".join(description))
        event.add("status", "CANCELLED" if item.status == "cancelled" else "CONFIRMED")
        cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _names(item: AgendaItem) -> str:
    return ", ".join(p["name"] + (f" ({p['attendee']})" if p.get("attendee") else "") for p in item.with_)


def html(agenda: Agenda) -> str:
    """One printable page (A4, no scripts, nothing loaded from elsewhere): the venue's Wi-Fi
    is not to be trusted on the day."""
    rows = []
    day = None
    for item in agenda.items:
        if item.status != "scheduled" or item.local_start is None:
            continue
        if item.local_start[:10] != day:
            day = item.local_start[:10]
            label = date.fromisoformat(day).strftime("%A %d %B %Y")
            rows.append(f'<tr class="day"><th colspan="3">{escape(label)}</th></tr>')
        who = "<br>".join(
            f"<strong>{escape(p['name'])}</strong>"
            + (f" · {escape(p['country'])}" if p.get("country") else "")
            + (f"<br><small>{escape(p['attendee'])}</small>" if p.get("attendee") else "")
            for p in item.with_
        )
        rows.append(
            f'<tr><td class="time">{escape(item.local_start[11:])}–{escape((item.local_end or "")[11:])}</td>'
            f'<td class="table">{escape(item.table or "")}</td><td>{who}</td></tr>'
        )
    waiting = [i for i in agenda.items if i.status == "waiting"]
    note = (
        f'<p class="note">{len(waiting)} accepted meeting(s) not in the schedule yet.</p>' if waiting else ""
    )
    where = ", ".join(escape(x) for x in (agenda.venue, agenda.city) if x)
    body = "\n".join(rows) or '<tr><td colspan="3">No meetings scheduled yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Agenda — {escape(agenda.name)} — {escape(agenda.event_name)}</title>
<style>
  @page {{ size: A4; margin: 15mm; }}
  body {{ font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; color: #111;
         max-width: 48em; margin: 2em auto; }}
  h1 {{ font-size: 1.4em; margin-bottom: 0; }}
  .meta {{ color: #444; margin-top: .3em; }}
  table {{ width: 100%; border-collapse: collapse; margin-top: 1em; }}
  td, th {{ border-bottom: 1px solid #bbb; padding: .45em .5em; text-align: left; vertical-align: top; }}
  tr.day th {{ background: #eee; border-top: 2px solid #111; }}
  td.time {{ white-space: nowrap; font-variant-numeric: tabular-nums; width: 8em; }}
  td.table {{ white-space: nowrap; width: 6em; font-weight: bold; }}
  .note {{ color: #a40; }}
  @media print {{ body {{ margin: 0; max-width: none; }} tr {{ page-break-inside: avoid; }} }}
</style></head>
<body>
<h1>{escape(agenda.event_name)}</h1>
<p class="meta">Agenda of <strong>{escape(agenda.name)}</strong>{" · " + where if where else ""}
 · times in {escape(agenda.timezone)}</p>
<table><thead><tr><th>Time</th><th>Table</th><th>With</th></tr></thead>
<tbody>
{body}
</tbody></table>
{note}
</body></html>
"""
