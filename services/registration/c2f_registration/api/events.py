"""Partnership events (B2B, C2C, webinars) and the participants who sign up for them."""

import asyncio
import hashlib
import secrets
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pymongo.errors import DuplicateKeyError

from c2f_registration import auth, store
from c2f_registration.api.common import (
    CREATED,
    MAX_OFFSET,
    NOT_YOUR_CLUSTER,
    merged,
    not_found,
    register,
    replace,
    unknown,
)
from c2f_registration.schemas import (
    EventFields,
    EventIn,
    EventOut,
    EventPatch,
    ParticipantIn,
    ParticipantOut,
    ParticipantPatch,
)
from c2f_shared.events import (
    Attendee,
    EventCreated,
    EventUpdated,
    ParticipantRegistered,
    ParticipantUpdated,
    ParticipantWithdrawn,
)
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.http import CorrelationId, RuntimeDep
from c2f_shared.vocabulary import EventKind

router = APIRouter()

PARTICIPANT_TOKEN_PREFIX = "c2fp"
NO_EVENT: dict[int | str, dict[str, Any]] = {404: {"description": "No such event"}}

# Every sign-up and withdrawal changes its event's `registered` counter inside its transaction,
# so two at once for one event collide (a write conflict: one is retried after a pause, and
# under a rush many are, until some give up with 503). Queued here instead, one at a time per
# event and process, they do not collide; the transaction still guards across instances.
_event_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()


def _one_at_a_time(event_id: str) -> asyncio.Lock:
    lock = _event_locks.get(event_id)
    if lock is None:
        lock = _event_locks[event_id] = asyncio.Lock()
    return lock


def _event_out(doc: dict[str, Any], created: bool = False) -> EventOut:
    return EventOut(
        **doc["data"],
        id=doc["_id"],
        revision=doc["revision"],
        created=created,
        registered=doc.get("registered", 0),
        slots=doc.get("slots", []),
    )


def _event_facts(event_id: str, revision: int, fields: EventFields, host_cluster_id: str) -> dict[str, Any]:
    return {
        **fields.model_dump(mode="json"),
        "event_id": event_id,
        "revision": revision,
        "host_cluster_id": host_cluster_id,
        "slots": fields.meeting_slots(),
    }


async def _event(runtime: Runtime, event_id: str) -> dict[str, Any]:
    doc = await store.get(runtime, store.EVENTS, event_id)
    if doc is None or "data" not in doc:  # (a count of sign-ups may come before its event)
        raise not_found("event", event_id)
    return doc


@router.post("/events", status_code=201, response_model=EventOut, responses=CREATED, tags=["events"])
async def create_event(
    body: EventIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> EventOut:
    """Create a B2B, C2C or webinar event hosted by a cluster (the operator, or the host's key).
    B2B and C2C events list their meeting days, slots, breaks and tables under `meetings`."""
    auth.require_may_act_for(caller, body.host_cluster_id)
    if await store.local_cluster(runtime, body.host_cluster_id) is None:
        raise unknown("host_cluster_id", "cluster (served by this instance)", body.host_cluster_id)
    data = body.model_dump(mode="json")
    slots = body.meeting_slots()
    stored = await register(
        response,
        runtime,
        store.EVENTS,
        f"{body.host_cluster_id}:{body.name.casefold()}:{body.starts_at.isoformat()}",
        data,
        lambda new_id: EventCreated(**_event_facts(new_id, 1, body, body.host_cluster_id)),
        correlation,
        extra={"slots": slots, "registered": 0},
    )
    return _event_out(stored.doc, stored.created)


@router.get("/events", response_model=list[EventOut], tags=["events"])
async def list_events(
    runtime: RuntimeDep,
    _: auth.Caller,
    kind: EventKind | None = None,
    when: Annotated[Literal["upcoming", "past"] | None, Query(description="Relative to now")] = None,
) -> list[EventOut]:
    """Every partnership event, soonest first; past webinars keep their recordings listed."""
    query: dict[str, Any] = {"data": {"$exists": True}}
    if kind is not None:
        query["data.kind"] = kind.value
    docs = await runtime.db[store.EVENTS].find(query).sort("data.starts_at").to_list(None)
    now = datetime.now(UTC)
    events = [_event_out(d) for d in docs]
    if when == "upcoming":
        events = [e for e in events if e.ends_at >= now]
    elif when == "past":
        events = [e for e in events if e.ends_at < now]
    return events


@router.get("/events/{event_id}", response_model=EventOut, responses=NO_EVENT, tags=["events"])
async def get_event(event_id: str, runtime: RuntimeDep, _: auth.Caller) -> EventOut:
    return _event_out(await _event(runtime, event_id))


@router.patch(
    "/events/{event_id}",
    response_model=EventOut,
    responses={
        **NO_EVENT,
        **NOT_YOUR_CLUSTER,
        409: {"description": "Hosted by another instance, or the host has an event of this name then"},
    },
    tags=["events"],
)
async def update_event(
    event_id: str, body: EventPatch, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> EventOut:
    """Change an event (the operator, or the host's key), e.g. add a webinar's recording link."""
    doc = await _event(runtime, event_id)
    if doc.get("foreign"):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "hosted by another registration instance: change it there"
        )
    host = doc["data"]["host_cluster_id"]
    auth.require_may_act_for(caller, host)
    changes = {**doc["data"], **body.model_dump(mode="json", exclude_unset=True)}
    changes.pop("host_cluster_id")
    fields = merged(EventFields, changes)
    data = {**fields.model_dump(mode="json"), "host_cluster_id": host}
    new_doc, changed = await replace(
        runtime,
        store.EVENTS,
        doc,
        f"{host}:{fields.name.casefold()}:{fields.starts_at.isoformat()}",
        data,
        lambda revision: EventUpdated(**_event_facts(event_id, revision, fields, host)),
        correlation,
    )
    if changed:
        await runtime.db[store.EVENTS].update_one(
            {"_id": event_id}, {"$set": {"slots": fields.meeting_slots()}}
        )
        new_doc["slots"] = fields.meeting_slots()
    return _event_out(new_doc)


def _participant_out(doc: dict[str, Any], token: str | None = None) -> ParticipantOut:
    return ParticipantOut(
        **doc["data"],
        id=doc["_id"],
        event_id=doc["event_id"],
        cluster_id=doc["cluster_id"],
        status=doc.get("status", "registered"),
        access_token=token,
    )


def _closed(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, reason)


@router.post(
    "/events/{event_id}/participants",
    status_code=201,
    response_model=ParticipantOut,
    responses={
        **NO_EVENT,
        **NOT_YOUR_CLUSTER,
        409: {
            "description": "Already registered (the detail names the participant), deadline passed, or full"
        },
        422: {"description": "Invalid input; `detail` names each field and the reason"},
    },
    tags=["participants"],
)
async def register_participant(
    event_id: str, body: ParticipantIn, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> ParticipantOut:
    """Sign up a member company (B2B, webinar) or a cluster delegation (C2C) for any partnership
    event, through the participant's own cluster. The answer carries the participant's access
    token, shown once."""
    event = await _event(runtime, event_id)
    kind = EventKind(event["data"]["kind"])
    if kind is EventKind.C2C:
        if body.delegation_of is None:
            raise unknown("company_id", "place for a company at a C2C event", str(body.company_id))
        cluster = await store.local_cluster(runtime, body.delegation_of)
        if cluster is None:
            raise unknown("delegation_of", "cluster", body.delegation_of)
        cluster_id, who = cluster["_id"], f"cluster:{cluster['_id']}"
    else:
        if body.company_id is None:
            raise unknown("delegation_of", "place for a delegation at this event", str(body.delegation_of))
        company = await store.get(runtime, store.COMPANIES, body.company_id)
        if company is None or not caller.may_act_for(company["data"]["cluster_id"]):
            raise unknown("company_id", "company", body.company_id)
        cluster_id, who = company["data"]["cluster_id"], f"company:{body.company_id}"
    auth.require_may_act_for(caller, cluster_id)
    _check_slots(event, body.availability)
    deadline = event["data"].get("registration_deadline")
    if deadline is not None and datetime.now(UTC) > datetime.fromisoformat(deadline):
        raise _closed(f"registration closed at {deadline}")

    secret = secrets.token_urlsafe(32)
    token_hash = hashlib.sha256(secret.encode()).hexdigest()
    data = body.model_dump(mode="json")
    natural_key = f"{event_id}:{who}"
    try:
        doc = await _sign_up(runtime, correlation, event, natural_key, cluster_id, data, token_hash)
    except DuplicateKeyError:
        raise _closed("already registered for this event (a moment ago)") from None
    return _participant_out(doc, token=f"{PARTICIPANT_TOKEN_PREFIX}.{doc['_id']}.{secret}")


async def _sign_up(
    runtime: Runtime,
    correlation: str,
    event: dict[str, Any],
    natural_key: str,
    cluster_id: str,
    data: dict[str, Any],
    token_hash: str,
) -> dict[str, Any]:
    """One transaction: check for a duplicate, take a place, store, announce."""
    event_id = event["_id"]

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        existing = await uow.db[store.PARTICIPANTS].find_one(
            {"natural_key": natural_key}, session=uow.session
        )
        if existing is not None:
            raise _closed(f"already registered for this event as participant {existing['_id']}")
        capacity = event["data"].get("capacity")
        seat = await uow.db[store.EVENTS].update_one(
            {"_id": event_id, **({"registered": {"$lt": capacity}} if capacity else {})},
            {"$inc": {"registered": 1}},
            session=uow.session,
        )
        if seat.matched_count == 0:
            raise _closed(f"the event is full ({capacity} places)")
        participant_id = store.new_id()
        doc = {
            "_id": participant_id,
            "natural_key": natural_key,
            "event_id": event_id,
            "cluster_id": cluster_id,
            "status": "registered",
            "token_hash": token_hash,
            "data": data,
            "created_at": datetime.now(UTC),
        }
        await uow.db[store.PARTICIPANTS].insert_one(doc, session=uow.session)
        uow.emit(
            ParticipantRegistered(
                participant_id=participant_id,
                event_id=event_id,
                company_id=data["company_id"],
                cluster_id=cluster_id,
                attendee=Attendee(**data["attendee"]),
                consent_share_contact=data["consent_share_contact"],
                availability=data["availability"] or [],
                languages=data["languages"],
                max_meetings=data["max_meetings"],
                access_token_hash=token_hash,
            )
        )
        return doc

    async with _one_at_a_time(event_id):
        return await runtime.transact(work, correlation)


@router.get("/events/{event_id}/participants", tags=["participants"], responses=NO_EVENT)
async def list_participants(
    event_id: str,
    runtime: RuntimeDep,
    caller: auth.Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many (in sign-up order)")] = 0,
) -> list[dict[str, Any]]:
    """Who takes part (ids only, no contact data), in sign-up order; page with `offset`. A
    cluster's key sees its own participants; the operator and the host see all."""
    event = await _event(runtime, event_id)
    query: dict[str, Any] = {"event_id": event_id, "status": "registered"}
    if not caller.may_act_for(event["data"]["host_cluster_id"]):
        query["cluster_id"] = caller.cluster_id
    found = runtime.db[store.PARTICIPANTS].find(query).sort([("created_at", 1), ("_id", 1)])
    docs = await found.skip(offset).limit(limit).to_list(None)
    return [
        {"id": d["_id"], "company_id": d["data"]["company_id"], "delegation_of": d["data"]["delegation_of"]}
        for d in docs
    ]


@router.delete(
    "/events/{event_id}/participants/{participant_id}",
    status_code=204,
    tags=["participants"],
    responses={404: {"description": "No such participant at this event"}},
)
async def withdraw_participant(
    event_id: str, participant_id: str, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> None:
    """Withdraw from the event; the place is freed and the participant may sign up again."""

    async def work(uow: UnitOfWork) -> None:
        participants = uow.db[store.PARTICIPANTS]
        doc = await participants.find_one({"_id": participant_id, "event_id": event_id}, session=uow.session)
        if doc is None or doc["status"] != "registered" or not caller.may_act_for(doc["cluster_id"]):
            raise not_found("participant", participant_id)
        await participants.update_one(
            {"_id": participant_id},
            {"$set": {"status": "withdrawn", "natural_key": f"withdrawn:{participant_id}"}},
            session=uow.session,
        )
        await uow.db[store.EVENTS].update_one(
            {"_id": event_id}, {"$inc": {"registered": -1}}, session=uow.session
        )
        uow.emit(ParticipantWithdrawn(participant_id=participant_id, event_id=event_id))

    async with _one_at_a_time(event_id):
        await runtime.transact(work, correlation)


def _check_slots(event: dict[str, Any], availability: list[str] | None) -> None:
    slot_ids = {slot["id"] for slot in event.get("slots", [])}
    wrong = [s for s in availability or [] if s not in slot_ids]
    if wrong:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "availability"),
                    "msg": f"not slots of this event: {wrong[:5]}",
                    "type": "value_error",
                }
            ]
        )


@router.patch(
    "/events/{event_id}/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    responses={404: {"description": "No such participant at this event"}},
)
async def update_participant(
    event_id: str,
    participant_id: str,
    body: ParticipantPatch,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    caller: auth.Caller,
) -> ParticipantOut:
    """Change when the participant can meet (slot ids), its languages or its most meetings.
    Matching reschedules what no longer fits, moving as few meetings as it can."""
    event = await _event(runtime, event_id)
    _check_slots(event, body.availability)
    changes = body.model_dump(mode="json", exclude_unset=True)

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        participants = uow.db[store.PARTICIPANTS]
        doc = await participants.find_one({"_id": participant_id, "event_id": event_id}, session=uow.session)
        if doc is None or doc["status"] != "registered" or not caller.may_act_for(doc["cluster_id"]):
            raise not_found("participant", participant_id)
        data = {**doc["data"], **changes}
        if data == doc["data"]:
            return doc
        await participants.update_one({"_id": participant_id}, {"$set": {"data": data}}, session=uow.session)
        uow.emit(
            ParticipantUpdated(
                participant_id=participant_id,
                event_id=event_id,
                availability=data["availability"] or [],
                languages=data["languages"],
                max_meetings=data["max_meetings"],
            )
        )
        return {**doc, "data": data}

    return _participant_out(await runtime.transact(work, correlation))
