"""Calendar invitations attached to mails (iCalendar, RFC 5545 / iTIP RFC 5546).

One meeting keeps one UID for its whole life, the same UID matching's agenda feed uses;
SEQUENCE is the meeting's change count, so a calendar program replaces the event it has
(METHOD:REQUEST) or removes it (METHOD:CANCEL) instead of adding another."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, vCalAddress
from icalendar import Event as VEvent

PRODID = "-//C2Future Match//Notifications//EN"
UID_DOMAIN = "c2future-match"


def invitation(
    method: str,
    meetings: list[dict[str, object]],
    timezone: str,
    organiser: str,
    attendee: str,
) -> bytes:
    """`meetings`: dicts with id, sequence, starts_at, ends_at, summary, location, description."""
    zone = ZoneInfo(timezone)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", method)
    for meeting in meetings:
        event = VEvent()
        event.add("uid", f"{meeting['id']}@{UID_DOMAIN}")
        event.add("sequence", meeting["sequence"])
        event.add("dtstamp", datetime.now(UTC))
        starts, ends = meeting["starts_at"], meeting["ends_at"]
        assert isinstance(starts, datetime) and isinstance(ends, datetime)
        event.add("dtstart", starts.astimezone(zone))
        event.add("dtend", ends.astimezone(zone))
        event.add("summary", meeting["summary"])
        event.add("location", meeting["location"])
        event.add("description", meeting["description"])
        event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
        event.add("organizer", vCalAddress(f"mailto:{organiser}"))
        event.add("attendee", vCalAddress(f"mailto:{attendee}"), parameters={"RSVP": "FALSE"})
        cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
