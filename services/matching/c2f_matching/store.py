"""Matching's collections, and the ids it derives so a retried write finds what it made."""

import uuid

# Read model of registration's facts (rebuilt from the topics on demand).
COMPANIES = "companies"
CLUSTERS = "clusters"
PARTICIPANTS = "participants"
EVENTS = "events"
ERASED = "erasures"  # when each erased company went (ids and dates only; in-memory indexes drop them)
# Matching's own facts.
SUGGESTIONS = "suggestions"
COMPANY_EVENTS = "company_events"  # the events each company signed up to (see handlers.participant)
MEETINGS = "meetings"
SCHEDULES = "schedules"
OUTCOMES = "outcomes"

_SUGGESTION_NS = uuid.UUID("6f1c7e0a-3f7e-4c52-9a53-6c2f0d1c2f00")


def suggestion_id(event_id: str, participant_a: str, participant_b: str) -> str:
    """The same pair at the same event always gets the same suggestion id."""
    first, second = sorted((participant_a, participant_b))
    return str(uuid.uuid5(_SUGGESTION_NS, f"{event_id}/{first}/{second}"))
