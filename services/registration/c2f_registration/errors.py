"""What registration refuses, and why, in the partnership's terms (no HTTP here).

The service modules (clusters, companies, events, participants, imports) raise
these; `api/errors.py` is the one place that turns each kind into an HTTP answer.
"""

from collections.abc import Sequence
from typing import Any


class Refused(Exception):
    """Registration would not do what was asked; `str(error)` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(Refused):
    """No such thing, or not one the caller may see (another cluster's member is not found)."""

    def __init__(self, what: str, item_id: str) -> None:
        super().__init__(f"no {what} {item_id!r}")
        self.what, self.item_id = what, item_id


class Forbidden(Refused):
    """The caller may not act for this cluster."""


class Conflict(Refused):
    """Different data is already registered under the same natural key, or what is stored
    changed meanwhile, or it is registered elsewhere: the request cannot apply as it stands."""


class AlreadyRegistered(Conflict):
    """The participant is already signed up for this event."""


class RegistrationClosed(Conflict):
    """The event's registration deadline has passed."""


class CapacityReached(Conflict):
    """The event has no place left."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"the event is full ({capacity} places)")
        self.capacity = capacity


class Invalid(Refused):
    """The input is not acceptable; each problem names its field (a location such as
    ("body", "cluster_id")) and the reason, as FastAPI's own validation errors do."""

    def __init__(self, problems: Sequence[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))
        self.problems = list(problems)

    @classmethod
    def field(cls, field: str | tuple[str | int, ...], reason: str, kind: str = "value_error") -> "Invalid":
        """One problem with one field of the request's body."""
        path = field if isinstance(field, tuple) else (field,)
        return cls([{"loc": ("body", *path), "msg": reason, "type": kind}])

    @classmethod
    def unknown(cls, field: str, what: str, value: str) -> "Invalid":
        """The field names something that is not registered (here)."""
        return cls.field(field, f"unknown {what} {value!r}", "value_error.unknown")


class UnreadableFile(Refused):
    """An uploaded member list that cannot be read at all (not a spreadsheet, empty, too long)."""
