"""Partnership events (B2B, C2C, webinars): creating, listing and changing them.

An event is changed on the instance that serves its host; the others keep a copy
(see `partnership`) so that their members can sign up (see `participants`).
"""

from datetime import UTC, datetime
from typing import Any, Literal

from c2f_registration import store
from c2f_registration.api_keys import Principal
from c2f_registration.companies import merged
from c2f_registration.errors import Conflict, Invalid, NotFound
from c2f_registration.schemas import EventFields, EventIn
from c2f_shared.events import EventCreated, EventUpdated
from c2f_shared.service import Runtime
from c2f_shared.vocabulary import EventKind


def natural_key(host_cluster_id: str, fields: EventFields) -> str:
    return f"{host_cluster_id}:{fields.name.casefold()}:{fields.starts_at.isoformat()}"


def facts(event_id: str, revision: int, fields: EventFields, host_cluster_id: str) -> dict[str, Any]:
    """What EventCreated and EventUpdated say about the event."""
    return {
        **fields.model_dump(mode="json"),
        "event_id": event_id,
        "revision": revision,
        "host_cluster_id": host_cluster_id,
        "slots": fields.meeting_slots(),
    }


async def create(runtime: Runtime, caller: Principal, event: EventIn, correlation: str) -> store.Stored:
    """Create an event hosted by a cluster this instance serves (the operator, or the host's key)."""
    caller.require_may_act_for(event.host_cluster_id)
    if not await store.serves(runtime, event.host_cluster_id):
        raise Invalid.unknown("host_cluster_id", "cluster (served by this instance)", event.host_cluster_id)
    return await store.register_once(
        runtime,
        store.EVENTS,
        natural_key(event.host_cluster_id, event),
        event.model_dump(mode="json"),
        lambda new_id: EventCreated(**facts(new_id, 1, event, event.host_cluster_id)),
        correlation,
        extra={"slots": event.meeting_slots(), "registered": 0},
    )


async def get(runtime: Runtime, event_id: str) -> dict[str, Any]:
    doc = await store.get(runtime, store.EVENTS, event_id)
    if doc is None or "data" not in doc:  # (a count of sign-ups may come before its event)
        raise NotFound("event", event_id)
    return doc


async def listing(
    runtime: Runtime, kind: EventKind | None, when: Literal["upcoming", "past"] | None
) -> list[dict[str, Any]]:
    """Every partnership event, soonest first; `when` is relative to now (by the event's end)."""
    query: dict[str, Any] = {"data": {"$exists": True}}
    if kind is not None:
        query["data.kind"] = kind.value
    docs = await runtime.db[store.EVENTS].find(query).sort("data.starts_at").to_list(None)
    if when is None:
        return docs
    now = datetime.now(UTC)
    return [d for d in docs if (datetime.fromisoformat(d["data"]["ends_at"]) >= now) == (when == "upcoming")]


async def update(
    runtime: Runtime, caller: Principal, event_id: str, changes: dict[str, Any], correlation: str
) -> dict[str, Any]:
    """Change an event (the operator, or the host's key), e.g. add a webinar's recording link."""
    doc = await get(runtime, event_id)
    if doc.get("foreign"):
        raise Conflict("hosted by another registration instance: change it there")
    host = doc["data"]["host_cluster_id"]
    caller.require_may_act_for(host)
    fields = merged(
        EventFields, {k: v for k, v in {**doc["data"], **changes}.items() if k != "host_cluster_id"}
    )
    data = {**fields.model_dump(mode="json"), "host_cluster_id": host}
    new_doc, changed = await store.replace(
        runtime,
        store.EVENTS,
        doc,
        natural_key(host, fields),
        data,
        lambda revision: EventUpdated(**facts(event_id, revision, fields, host)),
        correlation,
    )
    if changed:
        await runtime.db[store.EVENTS].update_one(
            {"_id": event_id}, {"$set": {"slots": fields.meeting_slots()}}
        )
        new_doc["slots"] = fields.meeting_slots()
    return new_doc
