"""Participants: member companies (B2B, webinars) and cluster delegations (C2C) signing
up for partnership events, changing when they can meet, and withdrawing.

Every sign-up and withdrawal changes its event's `registered` counter in the transaction
that stores it, which is what makes capacity hold. Sign-ups to one event that arrive while
another is being stored wait for their turn and are then seated together, in one transaction
that moves the counter once for all of them (`_seat`); with a duplicate among them, or fewer
places left than sign-ups, each is seated on its own instead, in the order they came.
"""

import asyncio
import contextlib
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
from c2f_shared.service import Runtime, UnitOfWork, tracing
from c2f_shared.vocabulary import EventKind

TOKEN_PREFIX = "c2fp"

# Two sign-ups or withdrawals at once for one event would collide on its counter (a write
# conflict: one is retried after a pause, and under a rush many are, until some give up with
# "busy"). Queued here instead, one turn at a time per event and process, they do not collide
# (a turn seats every sign-up waiting by then); the transaction still guards across instances.
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
    participant_id = store.new_id()
    seat = _Seat(
        doc={
            "_id": participant_id,
            "natural_key": f"{event_id}:{kind}:{party_id}",
            "event_id": event_id,
            "cluster_id": cluster_id,
            "status": "registered",
            "token_hash": token_hash,
            "data": data,
        },
        fact=ParticipantRegistered(
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
        ),
        capacity=event["data"].get("capacity"),
        correlation_id=correlation,
        trace=tracing.carrier(),
        taken=asyncio.get_running_loop().create_future(),
    )
    waiting = _waiting.setdefault(event_id, [])
    waiting.append(seat)
    async with _one_at_a_time(event_id):
        if not seat.taken.done():
            # This request's turn: it seats every sign-up to the event waiting by then.
            group, waiting[:] = waiting[:GROUP_MAX], waiting[GROUP_MAX:]
            # Shielded: the others wait for this group's outcome even if this request is given up.
            await asyncio.shield(_seat(runtime, event_id, group))
    if not waiting and _waiting.get(event_id) is waiting:
        del _waiting[event_id]
    doc = await seat.taken
    return SignedUp(doc, f"{TOKEN_PREFIX}.{doc['_id']}.{secret}")


GROUP_MAX = 50  # sign-ups to one event seated in one transaction at most


@dataclass
class _Seat:
    """A sign-up waiting for its event's turn."""

    doc: dict[str, Any]
    fact: ParticipantRegistered
    capacity: int | None
    correlation_id: str
    trace: tracing.Carrier
    taken: "asyncio.Future[dict[str, Any]]"  # the stored participant, or why not


_waiting: dict[str, list[_Seat]] = {}  # event id -> its sign-ups waiting, in the order they came


async def _seat(runtime: Runtime, event_id: str, group: list[_Seat]) -> None:
    """Seat `group` (sign-ups to one event, in the order they came) in one transaction: the
    event's counter moves once for all of them. Any trouble (a place short, a sign-up stored
    by another instance meanwhile) and each is seated on its own instead, in order, with its
    own answer. Every seat gets its answer, whatever happens."""
    try:
        if len(group) > 1:
            with contextlib.suppress(_Apart):
                await runtime.transact(
                    lambda uow: _seat_together(uow, event_id, group), group[0].correlation_id
                )
                return
        for seat in group:
            try:
                seat.taken.set_result(await _seat_alone(runtime, event_id, seat))
            except Exception as error:  # noqa: BLE001 - the sign-up's own answer (409, 503, ...)
                seat.taken.set_exception(error)
    finally:
        for seat in group:
            if not seat.taken.done():
                seat.taken.set_exception(RuntimeError("the sign-up was interrupted; nothing may be stored"))


class _Apart(Exception):
    """Seat the group's sign-ups one by one (the transaction is undone)."""


async def _seat_together(uow: UnitOfWork, event_id: str, group: list[_Seat]) -> None:
    keys = [seat.doc["natural_key"] for seat in group]
    if len(set(keys)) < len(keys) or await uow.db[store.PARTICIPANTS].find_one(
        {"natural_key": {"$in": keys}}, {"_id": 1}
    ):
        raise _Apart  # a duplicate among them: each gets its own answer
    now = datetime.now(UTC)
    docs = [{**seat.doc, "created_at": now} for seat in group]
    await uow.db[store.PARTICIPANTS].insert_many(docs)
    capacity = group[0].capacity
    seats = await uow.db[store.EVENTS].update_one(
        {"_id": event_id, **({"registered": {"$lte": capacity - len(group)}} if capacity else {})},
        {"$inc": {"registered": len(group)}},
    )
    if seats.matched_count == 0:
        raise _Apart  # fewer places left than sign-ups: first come, first seated
    for seat in group:
        with tracing.continued(seat.trace):  # each fact in its own request's trace
            uow.emit(seat.fact, correlation_id=seat.correlation_id)

    def answered() -> None:
        for seat, doc in zip(group, docs, strict=True):
            seat.taken.set_result(doc)

    uow.after_commit(answered)


async def _seat_alone(runtime: Runtime, event_id: str, seat: _Seat) -> dict[str, Any]:
    async def work(uow: UnitOfWork) -> dict[str, Any]:
        doc = {**seat.doc, "created_at": datetime.now(UTC)}
        # One sign-up per party and event: the natural key's unique index refuses a second
        # (DuplicateKeyError, below), before the seat is counted.
        await uow.db[store.PARTICIPANTS].insert_one(doc)
        seats = await uow.db[store.EVENTS].update_one(
            {"_id": event_id, **({"registered": {"$lt": seat.capacity}} if seat.capacity else {})},
            {"$inc": {"registered": 1}},
        )
        if seats.matched_count == 0:
            raise CapacityReached(seat.capacity or 0)  # the transaction, and the sign-up with it, is undone
        with tracing.continued(seat.trace):
            uow.emit(seat.fact, correlation_id=seat.correlation_id)
        return doc

    try:
        return await runtime.transact(work, seat.correlation_id)
    except DuplicateKeyError:
        existing = await runtime.db[store.PARTICIPANTS].find_one(
            {"natural_key": seat.doc["natural_key"]}, {"_id": 1}
        )
        if existing is None:  # withdrawn a moment ago
            raise AlreadyRegistered("already registered for this event (a moment ago)") from None
        raise AlreadyRegistered(
            f"already registered for this event as participant {existing['_id']}"
        ) from None


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
