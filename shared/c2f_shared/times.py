"""Moments in UTC, whatever shape they arrive in (aware datetimes from the database, ISO
strings from events)."""

from datetime import UTC, datetime
from typing import Any


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: Any) -> datetime:
    """`value` (a datetime or an ISO 8601 string) as an aware datetime; naive means UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
