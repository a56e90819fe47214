"""Participants: member companies (B2B, webinars) and cluster delegations (C2C) signing
up for partnership events, changing when they can meet, and withdrawing.

Every sign-up and withdrawal changes its event's `registered` counter in its own
transaction, which is what makes capacity hold.
"""

import asyncio
import hashlib
import secrets
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from c2f_registration import events, store
from c2f_registration.api_keys import Principal
from c2f_registration.errors import AlreadyRegistered, CapacityReached, Invalid, NotFound, RegistrationClosed
from c2f_registration.schemas import ParticipantIn, ParticipantPatch
from c2f_shared.events import Attendee, ParticipantRegistered, ParticipantUpdated, ParticipantWithdrawn
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.vocabulary import EventKind

TOKEN_PREFIX = "c2fp"

# Two sign-ups or withdrawals at once for one event would collide on its counter (a write
# conflict: one is retried after a pause, and under a rush many are, until some give up with
# "busy"). Queued here instead, one at a time per event and process, they do not collide;
# the transaction still guards across instances.
_event_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()


def _one_at_a_time(event_id: str) -> asyncio.Lock:
    lock = _event_locks.get(event_id)
    if lock is None:
        lock = _event_locks[event_id] = asyncio.Lock()
    return lock


@dataclass(frozen=True)
class SignedUp:
    """The stored participant, and its access token (the only copy: shown once)."""

    doc: dict[str, Any]
    access_token: str


def check_slots(event: dict[str, Any], availability: list[str] | None) -> None:
    """Invalid unless every slot id named is one of the event's."""
    slot_ids = {slot["id"] for slot in event.get("slots", [])}
    wrong = [s for s in availability or [] if s not in slot_ids]
    if wrong:
        raise Invalid.field("availability", f"not slots of this event: {wrong[:5]}")


def check_open(event: dict[str, Any], now: datetime) -> None:
    """RegistrationClosed once the event's registration deadline has passed."""
    deadline = event["data"].get("registration_deadline")
    if deadline is not None and now > datetime.fromisoformat(deadline):
        raise RegistrationClosed(f"registration closed at {deadline}")


def party_of(event: dict[str, Any], participant: ParticipantIn) -> tuple[str, str]:
    """Who signs up, by the event's kind: ("cluster", id) for a C2C delegation, ("company",
    id) otherwise; Invalid if the participant is of the wrong kind for the event."""
    if EventKind(event["data"]["kind"]) is EventKind.C2C:
        if participant.delegation_of is None:
            raise Invalid.unknown(
                "company_id", "place for a company at a C2C event", str(participant.company_id)
            )
        return "cluster", participant.delegation_of
    if participant.company_id is None:
        raise Invalid.unknown(
            "delegation_of", "place for a delegation at this event", str(participant.delegation_of)
        )
    return "company", participant.company_id


async def sign_up(
    runtime: Runtime, caller: Principal, event_id: str, participant: ParticipantIn, correlation: str
) -> SignedUp:
    """Sign up a member company or a cluster delegation, through its own cluster."""
    event = await events.get(runtime, event_id)
    kind, party_id = party_of(event, participant)
    if kind == "cluster":
        cluster = await store.local_cluster(runtime, party_id)
        if cluster is None:
            raise Invalid.unknown("delegation_of", "cluster", party_id)
        cluster_id = cluster["_id"]
    else:
        company = await store.get(runtime, store.COMPANIES, party_id)
        if company is None or not caller.may_act_for(company["data"]["cluster_id"]):
            raise Invalid.unknown("company_id", "company", party_id)
        cluster_id = company["data"]["cluster_id"]
    caller.require_may_act_for(cluster_id)
    check_slots(event, participant.availability)
    check_open(event, datetime.now(UTC))

    secret = secrets.token_urlsafe(32)
    token_hash = hashlib.sha256(secret.encode()).hexdigest()
    data = participant.model_dump(mode="json")
    natural_key = f"{event_id}:{kind}:{party_id}"

    async def work(uow: UnitOfWork) -> dict[str, Any]:
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
        # One sign-up per party and event: the natural key's unique index refuses a second
        # (DuplicateKeyError, below), before the seat is counted.
        await uow.db[store.PARTICIPANTS].insert_one(doc)
        capacity = event["data"].get("capacity")
        seat = await uow.db[store.EVENTS].update_one(
            {"_id": event_id, **({"registered": {"$lt": capacity}} if capacity else {})},
            {"$inc": {"registered": 1}},
        )
        if seat.matched_count == 0:
            raise CapacityReached(capacity)  # the transaction, and the sign-up with it, is undone
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

    try:
        async with _one_at_a_time(event_id):
            doc = await runtime.transact(work, correlation)
    except DuplicateKeyError:
        existing = await runtime.db[store.PARTICIPANTS].find_one({"natural_key": natural_key}, {"_id": 1})
        if existing is None:  # withdrawn a moment ago
            raise AlreadyRegistered("already registered for this event (a moment ago)") from None
        raise AlreadyRegistered(
            f"already registered for this event as participant {existing['_id']}"
        ) from None
    return SignedUp(doc, f"{TOKEN_PREFIX}.{doc['_id']}.{secret}")


async def listing(
    runtime: Runtime, caller: Principal, event_id: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Who takes part, in sign-up order: a cluster's key sees its own participants; the
    operator and the host see all."""
    event = await events.get(runtime, event_id)
    query: dict[str, Any] = {"event_id": event_id, "status": "registered"}
    if not caller.may_act_for(event["data"]["host_cluster_id"]):
        query["cluster_id"] = caller.cluster_id
    found = runtime.db[store.PARTICIPANTS].find(query).sort([("created_at", 1), ("_id", 1)])
    return await found.skip(offset).limit(limit).to_list(None)


async def _registered(
    uow: UnitOfWork, caller: Principal, event_id: str, participant_id: str
) -> dict[str, Any]:
    doc = await uow.db[store.PARTICIPANTS].find_one({"_id": participant_id, "event_id": event_id})
    if doc is None or doc["status"] != "registered" or not caller.may_act_for(doc["cluster_id"]):
        raise NotFound("participant", participant_id)
    return doc


async def withdraw(
    runtime: Runtime, caller: Principal, event_id: str, participant_id: str, correlation: str
) -> None:
    """Withdraw from the event; the place is freed and the participant may sign up again."""

    async def work(uow: UnitOfWork) -> None:
        await _registered(uow, caller, event_id, participant_id)
        await uow.db[store.PARTICIPANTS].update_one(
            {"_id": participant_id},
            {"$set": {"status": "withdrawn", "natural_key": f"withdrawn:{participant_id}"}},
        )
        await uow.db[store.EVENTS].update_one({"_id": event_id}, {"$inc": {"registered": -1}})
        uow.emit(ParticipantWithdrawn(participant_id=participant_id, event_id=event_id))

    async with _one_at_a_time(event_id):
        await runtime.transact(work, correlation)


async def update(
    runtime: Runtime,
    caller: Principal,
    event_id: str,
    participant_id: str,
    patch: ParticipantPatch,
    correlation: str,
) -> dict[str, Any]:
    """Change when the participant can meet (slot ids), its languages or its most meetings."""
    event = await events.get(runtime, event_id)
    check_slots(event, patch.availability)
    changes = patch.model_dump(mode="json", exclude_unset=True)

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        doc = await _registered(uow, caller, event_id, participant_id)
        data = {**doc["data"], **changes}
        if data == doc["data"]:
            return doc
        await uow.db[store.PARTICIPANTS].update_one({"_id": participant_id}, {"$set": {"data": data}})
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

    return await runtime.transact(work, correlation)
