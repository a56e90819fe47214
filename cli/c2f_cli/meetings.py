"""Meetings from the command line: the demo's meeting requests and answers, and publishing
an event's schedule. Everything goes through matching's public HTTP API as the operator."""

import time
from collections.abc import Iterator
from typing import Any

import httpx

# Matching embeds each profile as it arrives (seconds each on a cold start): the suggestions
# count as complete once they have not changed for this long.
QUIET_S = 10.0


class MeetingsError(RuntimeError):
    pass


def settled_suggestions(matching: httpx.Client, event_id: str, within: float = 90.0) -> list[dict[str, Any]]:
    """The event's suggestions once matching has stopped adding to them (it embeds profiles
    as they arrive), or whatever there is after `within` seconds."""
    deadline = time.monotonic() + within
    seen: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        found = matching.get(f"/events/{event_id}/suggestions", params={"limit": 500}).json()
        if len(found) != len(seen) or _behind(matching):
            seen, quiet_since = found, time.monotonic()
        elif seen and time.monotonic() - quiet_since > QUIET_S:
            break
        time.sleep(0.5)
    return seen


def _behind(matching: httpx.Client) -> bool:
    """Matching still has sign-ups to read (its consumer lag, from /metrics, is not 0)."""
    metrics = matching.get("/metrics").text
    return any(
        float(line.rsplit(" ", 1)[1]) > 0
        for line in metrics.splitlines()
        if line.startswith("c2f_consumer_lag{")
    )


def demo(matching: httpx.Client, event_id: str) -> Iterator[str]:
    """Request a meeting for each suggested pair (the first party asks), have four in five
    accepted and one declined, then publish the schedule. Idempotent: requests and answers
    already made are left as they are."""
    suggestions = settled_suggestions(matching, event_id)
    for n, suggestion in enumerate(suggestions):
        a, b = (p["participant_id"] for p in suggestion["parties"])
        asked = matching.post(f"/participants/{a}/meetings", json={"with": [b]})
        if asked.status_code == 409:
            yield "already requested"
            continue
        if asked.status_code not in (200, 201):
            raise MeetingsError(f"requesting a meeting answered {asked.status_code}: {asked.text}")
        action = "decline" if n % 5 == 4 else "accept"
        answered = matching.post(f"/meetings/{asked.json()['id']}/{action}", json={"participant_id": b})
        if answered.status_code not in (200, 409):
            raise MeetingsError(
                f"answering a meeting request answered {answered.status_code}: {answered.text}"
            )
        yield "accepted" if action == "accept" else "declined"
    schedule(matching, event_id, seconds=5)
    yield "scheduled"


def schedule(matching: httpx.Client, event_id: str, seconds: float) -> dict[str, Any]:
    response = matching.post(f"/events/{event_id}/schedule", json={"seconds": seconds}, timeout=seconds + 60)
    if response.status_code != 200:
        raise MeetingsError(f"matching answered {response.status_code}: {response.text}")
    published: dict[str, Any] = response.json()
    return published
