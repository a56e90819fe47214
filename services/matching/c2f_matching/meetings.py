"""The meeting lifecycle that matching owns: requests and answers, the published schedule of
an event (slots and tables, stable from one version to the next) and each side's outcome.

Every change happens in one unit of work that also emits the fact (transactional outbox).
Writes that must not interleave (two requests racing past a cap) touch the participants'
read-model documents, so concurrent transactions on the same participant conflict and retry."""

import asyncio
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from c2f_matching.scheduling import Instance, Meeting, idle_slots, plan, worth
from c2f_matching.store import EVENTS, MEETINGS, OUTCOMES, PARTICIPANTS, SCHEDULES, SUGGESTIONS, suggestion_id
from c2f_shared.events import (
    ERASED_PARTY,
    MeetingAccepted,
    MeetingCancelled,
    MeetingDeclined,
    MeetingOutcomeRecorded,
    MeetingRequested,
    MeetingScheduled,
    MeetingUnscheduled,
    SchedulePublished,
    _MeetingFacts,
)
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.waker import Waker
from c2f_shared.times import now, utc
from c2f_shared.vocabulary import EventKind, MeetingStatus

ACTIVE = (MeetingStatus.REQUESTED.value, MeetingStatus.ACCEPTED.value)
OPERATOR = "operator"

# Everything matching publishes about meetings (all on topics.MEETINGS).
PUBLISHES = (
    MeetingRequested,
    MeetingAccepted,
    MeetingDeclined,
    MeetingCancelled,
    MeetingScheduled,
    MeetingUnscheduled,
    SchedulePublished,
    MeetingOutcomeRecorded,
)

MUTUAL_BONUS = 3  # both sides asked: the strongest sign of interest


class Refused(Exception):
    """A transition the rules do not allow; the subclass says what kind of refusal it is,
    `detail` says why, and `field` names the part of the request at fault (when one is)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.field = detail, field


class NotFound(Refused):
    """No such event or meeting."""


class NotYours(Refused):
    """The participant is not the one who may do this (not invited, not a party)."""


class NotNow(Refused):
    """The meeting's or the event's state does not allow it now (closed, full, already answered)."""


class Invalid(Refused):
    """The request itself is wrong (`field` names what)."""


class NotYet(Refused):
    """What the request needs is on its way to matching but not here yet (an event whose
    participants came first: events and sign-ups travel on topics of their own): try again."""


def _known(event: dict[str, Any] | None, event_id: str) -> dict[str, Any]:
    """The event, as matching knows it: NotFound if it has never heard of it, NotYet if only
    its participants have come so far (see profiles.bump_roster)."""
    if event is None:
        raise NotFound(f"no event {event_id!r}")
    if "name" not in event:
        raise NotYet(f"event {event_id!r} has not reached matching yet; try again in a moment")
    return event


# -- requests and answers -------------------------------------------------------


async def request(
    uow: UnitOfWork, requester: dict[str, Any], invitees: list[str], message: str | None, by: str
) -> tuple[dict[str, Any], bool]:
    """Ask `invitees` (participants of the requester's event) for a meeting. Answers the
    meeting and whether it is new: asking someone who already asked you accepts theirs."""
    event = await _event(uow, requester["event_id"])
    kind, rules = event.get("kind"), event.get("meetings") or {}
    if kind == EventKind.WEBINAR or not event.get("slots"):
        raise NotNow("this event has no meeting slots")
    if requester["_id"] in invitees:
        raise Invalid("a participant cannot request a meeting with itself", "with")
    if len(invitees) > 1 and kind != EventKind.C2C:
        raise Invalid("only C2C events have meetings of more than two parties", "with")
    deadline = rules.get("requests_deadline")
    if deadline is not None and now() > utc(deadline):
        raise NotNow(f"meeting requests closed at {deadline}")
    found = (
        await uow.db[PARTICIPANTS].find({"_id": {"$in": invitees}, "event_id": event["_id"]}).to_list(None)
    )
    missing = sorted(set(invitees) - {p["_id"] for p in found})
    if missing:
        raise Invalid(f"not participants of this event: {missing}", "with")
    parties = [requester["_id"], *invitees]
    await _lock(uow, parties)

    if len(invitees) == 1:
        earlier = await uow.db[MEETINGS].find_one(
            {
                "event_id": event["_id"],
                "parties": {"$all": parties, "$size": 2},
                "status": {"$ne": "cancelled"},
            },
        )
        if earlier is not None:
            if earlier["status"] == MeetingStatus.REQUESTED and earlier["requested_by"] == invitees[0]:
                # They asked us first: asking back is saying yes, and a mutual wish.
                await uow.db[MEETINGS].update_one(
                    {"_id": earlier["_id"]}, {"$inc": {"priority": MUTUAL_BONUS}}
                )
                earlier["priority"] += MUTUAL_BONUS
                return await _answer(uow, event, earlier, requester["_id"], True, by), False
            raise NotNow(
                f"there is already a meeting request between you: {earlier['_id']} ({earlier['status']})"
            )

    cap = rules.get("max_requests")
    if cap is not None:
        mine = await uow.db[MEETINGS].count_documents(
            {"event_id": event["_id"], "requested_by": requester["_id"], "status": {"$in": list(ACTIVE)}},
        )
        if mine >= cap:
            raise NotNow(f"you have {mine} open or accepted requests, the most this event allows")
    priority = 1
    if len(invitees) == 1:
        suggested = await uow.db[SUGGESTIONS].find_one(
            {"_id": suggestion_id(event["_id"], requester["_id"], invitees[0])},
            {"score": 1},
        )
        if suggested is not None:
            priority += round(4 * min(float(suggested["score"]), 1.5))
    meeting_id = _meeting_id(event["_id"], parties, await _round(uow, event["_id"], parties))
    doc: dict[str, Any] = {
        "_id": meeting_id,
        "event_id": event["_id"],
        "requested_by": requester["_id"],
        "parties": parties,
        "answers": dict.fromkeys(invitees, MeetingStatus.REQUESTED.value),
        "status": MeetingStatus.REQUESTED.value,
        "message": message,
        "priority": priority,
        "version": 1,
        "sequence": -1,
        "placement": None,
        "created_at": now(),
        "updated_at": now(),
    }
    await uow.db[MEETINGS].insert_one(doc)
    uow.emit(_fact(MeetingRequested, doc, by))
    if rules.get("auto_accept"):
        for invitee in invitees:
            if doc["status"] == MeetingStatus.REQUESTED and await _room_for_one_more(uow, event, invitee):
                doc = await _answer(uow, event, doc, invitee, True, "auto")
    return doc, True


async def answer(uow: UnitOfWork, meeting_id: str, invitee: str, accept: bool, by: str) -> dict[str, Any]:
    meeting = await _meeting(uow, meeting_id)
    await _lock(uow, meeting["parties"])
    event = await _event(uow, meeting["event_id"])
    if invitee not in meeting["answers"]:
        raise NotYours("only an invited participant can answer this request")
    if meeting["status"] != MeetingStatus.REQUESTED or meeting["answers"][invitee] != MeetingStatus.REQUESTED:
        raise NotNow(f"this request is {meeting['status']}; only a pending request can be answered")
    if accept and not await _room_for_one_more(uow, event, invitee):
        raise NotNow("you already have as many meetings as allowed at this event")
    return await _answer(uow, event, meeting, invitee, accept, by)


async def _answer(
    uow: UnitOfWork, event: dict[str, Any], meeting: dict[str, Any], invitee: str, accept: bool, by: str
) -> dict[str, Any]:
    answers = {**meeting["answers"], invitee: "accepted" if accept else "declined"}
    if MeetingStatus.REQUESTED in answers.values():
        status = MeetingStatus.REQUESTED.value
    else:
        status = "accepted" if MeetingStatus.ACCEPTED in answers.values() else "declined"
    if status == MeetingStatus.ACCEPTED and len(meeting["parties"]) > 2:
        # Delegations that declined a C2C meeting are not part of it.
        parties = [p for p in meeting["parties"] if answers.get(p, "accepted") == "accepted"]
    else:
        parties = meeting["parties"]
    changes = {"answers": answers, "status": status, "parties": parties, "updated_at": now()}
    meeting = await _save(uow, meeting, changes)
    fact = MeetingDeclined if not accept else MeetingAccepted
    if not accept or status == MeetingStatus.ACCEPTED:
        uow.emit(_fact(fact, meeting, by))
    if status == MeetingStatus.ACCEPTED:
        await schedule_is_stale(uow, event["_id"])
    return meeting


async def cancel(uow: UnitOfWork, meeting_id: str, who: str, by: str) -> dict[str, Any]:
    """Call off a request or an accepted meeting (a party, or the operator as `who`)."""
    meeting = await _meeting(uow, meeting_id)
    if who != OPERATOR and who not in meeting["parties"]:
        raise NotYours("only a party to the meeting can cancel it")
    if meeting["status"] not in ACTIVE:
        raise NotNow(f"this request is already {meeting['status']}")
    return await _cancel(uow, meeting, by)


async def _cancel(uow: UnitOfWork, meeting: dict[str, Any], by: str) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": MeetingStatus.CANCELLED.value, "updated_at": now()}
    placed = meeting.get("placement")
    if placed is not None:
        changes |= {"placement": None, "last_placement": placed, "sequence": meeting["sequence"] + 1}
    meeting = await _save(uow, meeting, changes)
    uow.emit(_fact(MeetingCancelled, meeting, by))
    if placed is not None:
        version = await _schedule_version(uow, meeting["event_id"])
        uow.emit(_unscheduled(meeting, version, "cancelled"))
    if meeting["answers"] and "accepted" in meeting["answers"].values():
        await schedule_is_stale(uow, meeting["event_id"])  # its slot may fit one left out
    return meeting


async def withdraw(uow: UnitOfWork, participant_id: str, by: str = "withdrawn") -> None:
    """A participant left the event (or was erased): its open and accepted meetings are off."""
    async for meeting in uow.db[MEETINGS].find({"parties": participant_id, "status": {"$in": list(ACTIVE)}}):
        await _cancel(uow, meeting, by)


async def forget(uow: UnitOfWork, participant_ids: list[str]) -> None:
    """Erasure: cancel what the participants were part of, then drop every trace of them: their
    meetings, and every outcome of those meetings (the other side's too). The cancellations
    name them as ERASED_PARTY and carry no message."""
    gone = set(participant_ids)
    meeting_ids = []
    async for meeting in uow.db[MEETINGS].find({"parties": {"$in": participant_ids}}):
        meeting_ids.append(meeting["_id"])
        if meeting["status"] in ACTIVE:
            await _cancel(uow, _without(meeting, gone), ERASED_PARTY)
    await uow.db[MEETINGS].delete_many({"_id": {"$in": meeting_ids}})
    await uow.db[OUTCOMES].delete_many(
        {"$or": [{"participant_id": {"$in": participant_ids}}, {"meeting_id": {"$in": meeting_ids}}]},
    )


def _without(meeting: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    """The meeting as the others may still hear of it: the erased parties' ids replaced."""

    def hide(pid: str) -> str:
        return ERASED_PARTY if pid in gone else pid

    return {
        **meeting,
        "parties": [hide(p) for p in meeting["parties"]],
        "requested_by": hide(meeting["requested_by"]),
        "answers": {hide(p): a for p, a in meeting["answers"].items()},
        "message": None,
    }


async def schedule_is_stale(uow: UnitOfWork, event_id: str) -> None:
    """Something the published schedule depends on changed: it needs a new version (which
    `replan_stale` publishes by itself at events whose organiser chose auto-reschedule)."""
    event = await uow.db[EVENTS].find_one({"_id": event_id}, {"meetings": 1})
    auto = bool(((event or {}).get("meetings") or {}).get("auto_reschedule"))
    await uow.db[SCHEDULES].update_one(
        {"_id": event_id}, {"$set": {"stale": True, "stale_since": now(), "auto": auto}}
    )
    if auto:
        uow.after_commit(STALE.wake)


# Wakes this process's automatic rescheduling (`replan_stale`'s loop) when a schedule with
# auto-reschedule went stale here; what other instances stale, they replan themselves.
STALE = Waker()


async def next_replan_in(runtime: Runtime, quiet: float, at_most: float) -> float:
    """Seconds until `replan_stale` next has an event to replan (at most `at_most`)."""
    at = now()
    soonest = at + timedelta(seconds=at_most)
    async for schedule in (
        runtime.db[SCHEDULES]
        .find({"stale": True, "auto": True}, {"stale_since": 1, "replanning_until": 1})
        .sort("stale_since", 1)
        .limit(20)
    ):
        due = utc(schedule["stale_since"]) + timedelta(seconds=quiet)
        if schedule.get("replanning_until") is not None:
            due = max(due, utc(schedule["replanning_until"]))
        soonest = min(soonest, due)
    return (soonest - at).total_seconds()


async def replan_stale(runtime: Runtime, seconds: float, quiet: float) -> list[str]:
    """Publish a new version of each auto-rescheduled schedule that has been stale for `quiet`
    seconds (changes come in bursts). An instance claims an event with a lease first, so
    several matching instances never replan the same event at once."""
    done: list[str] = []
    tried: list[str] = []
    while True:
        at = now()
        claimed = await runtime.db[SCHEDULES].find_one_and_update(
            {
                "_id": {"$nin": tried},
                "stale": True,
                "auto": True,
                "stale_since": {"$lte": at - timedelta(seconds=quiet)},
                "$or": [{"replanning_until": None}, {"replanning_until": {"$lt": at}}],
            },
            {"$set": {"replanning_until": at + timedelta(seconds=3 * seconds + 30)}},
        )
        if claimed is None:
            return done
        tried.append(claimed["_id"])
        try:
            await publish_schedule(runtime, claimed["_id"], seconds)
            done.append(claimed["_id"])
        except Refused:
            pass  # changed meanwhile: still stale, replanned on a later round
        finally:
            await runtime.db[SCHEDULES].update_one(
                {"_id": claimed["_id"]}, {"$set": {"replanning_until": None}}
            )


async def _room_for_one_more(uow: UnitOfWork, event: dict[str, Any], participant_id: str) -> bool:
    participant = await uow.db[PARTICIPANTS].find_one({"_id": participant_id})
    caps = [(event.get("meetings") or {}).get("max_meetings"), (participant or {}).get("max_meetings")]
    limits = [c for c in caps if c is not None]
    if not limits:
        return True
    accepted = await uow.db[MEETINGS].count_documents(
        {"event_id": event["_id"], "parties": participant_id, "status": "accepted"}
    )
    return bool(accepted < min(limits))


# -- the schedule ----------------------------------------------------------------


async def publish_schedule(
    runtime: Runtime, event_id: str, seconds: float, correlation: str | None = None
) -> dict[str, Any]:
    """Compute the best schedule for the event's accepted meetings within `seconds`, keeping
    the published one as far as possible, and publish what changed."""
    event = _known(await runtime.db[EVENTS].find_one({"_id": event_id}), event_id)
    if not event.get("slots"):
        raise NotNow("this event has no meeting slots to schedule")
    docs = await runtime.db[MEETINGS].find({"event_id": event_id, "status": "accepted"}).to_list(None)
    participants = await runtime.db[PARTICIPANTS].find({"event_id": event_id}).to_list(None)
    instance, slots = _instance(event, docs, participants)
    started = datetime.now(UTC)
    schedule = await asyncio.to_thread(plan, instance, seconds)
    taken = (datetime.now(UTC) - started).total_seconds()
    seen = {d["_id"]: d["version"] for d in docs}

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        current = (
            await uow.db[MEETINGS]
            .find({"event_id": event_id, "status": "accepted"}, {"version": 1})
            .to_list(None)
        )
        if {d["_id"]: d["version"] for d in current} != seen:
            raise NotNow("meetings changed while the schedule was computed; ask again")
        version = await _schedule_version(uow, event_id) + 1
        changed = dropped = 0
        for doc in docs:
            slot = schedule.slot_of.get(doc["_id"])
            old = doc.get("placement")
            if slot is None:
                if old is not None:
                    doc = await _save(
                        uow, doc, {"placement": None, "last_placement": old, "sequence": doc["sequence"] + 1}
                    )
                    uow.emit(_unscheduled(doc, version, "no_room"))
                    dropped += 1
                continue
            new = _placement(event, slots[slot], schedule.table_of[doc["_id"]])
            if old is not None and old["slot_id"] == new["slot_id"] and old["table"] == new["table"]:
                continue
            doc = await _save(uow, doc, {"placement": new, "sequence": doc["sequence"] + 1})
            uow.emit(_scheduled(doc, version, "new" if old is None else "moved"))
            changed += old is not None
        published = SchedulePublished(
            event_id=event_id,
            schedule_version=version,
            accepted=len(docs),
            scheduled=len(schedule.slot_of),
            moved=changed,
            unscheduled=dropped,
            idle_slots=idle_slots(instance, schedule.slot_of),
            method=schedule.method,
            proven_optimal=schedule.proven_optimal,
        )
        reached = worth(instance, schedule.slot_of)
        summary = {
            **published.model_dump(),
            "seconds": round(taken, 3),
            "value": reached,
            "bound": schedule.bound,
            "share_of_bound": round(reached / schedule.bound, 4) if schedule.bound else None,
        }
        await uow.db[SCHEDULES].update_one(
            {"_id": event_id},
            {"$set": {**summary, "stale": False, "published_at": now()}},
            upsert=True,
        )
        uow.emit(published)
        return summary

    return await runtime.transact(work, correlation)


def _instance(
    event: dict[str, Any], docs: list[dict[str, Any]], participants: list[dict[str, Any]]
) -> tuple[Instance, list[dict[str, Any]]]:
    slots = sorted(event["slots"], key=lambda s: str(s["starts_at"]))
    index = {s["id"]: i for i, s in enumerate(slots)}
    dates = sorted({s["id"][:10] for s in slots})
    available = {
        p["_id"]: frozenset(index[s] for s in p["availability"] if s in index)
        for p in participants
        if p.get("availability")
    }
    meetings = tuple(
        Meeting(
            d["_id"],
            tuple(d["parties"]),
            d["priority"],
            index.get(d["placement"]["slot_id"]) if d.get("placement") else None,
            _table_number(d["placement"]["table"]) if d.get("placement") else None,
        )
        for d in docs
    )
    tables = int((event.get("meetings") or {}).get("tables") or 1)
    day = tuple(dates.index(s["id"][:10]) for s in slots)
    return Instance(day=day, tables=tables, meetings=meetings, available=available), slots


def _placement(event: dict[str, Any], slot: dict[str, Any], table: int) -> dict[str, Any]:
    room = "Room" if event.get("mode") == "virtual" else "Table"
    return {
        "slot_id": slot["id"],
        "starts_at": utc(slot["starts_at"]),
        "ends_at": utc(slot["ends_at"]),
        "table": f"{room} {table + 1}",
    }


def _table_number(label: str) -> int:
    return int(label.rsplit(" ", 1)[-1]) - 1


async def _schedule_version(uow: UnitOfWork, event_id: str) -> int:
    doc = await uow.db[SCHEDULES].find_one({"_id": event_id}, {"schedule_version": 1})
    return int(doc["schedule_version"]) if doc else 0


def _scheduled(doc: dict[str, Any], version: int, change: str) -> MeetingScheduled:
    placed = doc["placement"]
    return MeetingScheduled(
        meeting_id=doc["_id"],
        event_id=doc["event_id"],
        parties=doc["parties"],
        slot_id=placed["slot_id"],
        starts_at=placed["starts_at"],
        ends_at=placed["ends_at"],
        table=placed["table"],
        sequence=doc["sequence"],
        schedule_version=version,
        change=change,
    )


def _unscheduled(doc: dict[str, Any], version: int, reason: str) -> MeetingUnscheduled:
    return MeetingUnscheduled(
        meeting_id=doc["_id"],
        event_id=doc["event_id"],
        parties=doc["parties"],
        sequence=doc["sequence"],
        schedule_version=version,
        reason=reason,
    )


# -- outcomes ------------------------------------------------------------------------


async def record_outcome(
    uow: UnitOfWork, meeting_id: str, participant_id: str, held: bool, rating: int | None, follow_up: str
) -> dict[str, Any]:
    """One side's account of a meeting that has started; editable later (agreements come
    months after). Answers the stored outcome."""
    meeting = await _meeting(uow, meeting_id)
    if participant_id not in meeting["parties"]:
        raise NotYours("only a party to the meeting can record its outcome")
    placed = meeting.get("placement")
    if meeting["status"] != MeetingStatus.ACCEPTED or placed is None:
        raise NotNow("only a scheduled meeting has an outcome")
    if utc(placed["starts_at"]) > now():
        raise NotNow(f"the meeting has not started yet (it starts at {placed['starts_at']})")
    key = f"{meeting_id}:{participant_id}"
    facts = {"held": held, "rating": rating, "follow_up": follow_up}
    known = await uow.db[OUTCOMES].find_one({"_id": key})
    if known is not None and all(known.get(k) == v for k, v in facts.items()):
        return known
    revision = (known or {}).get("revision", 0) + 1
    doc = {
        **facts,
        "meeting_id": meeting_id,
        "event_id": meeting["event_id"],
        "participant_id": participant_id,
        "revision": revision,
        "updated_at": now(),
    }
    await uow.db[OUTCOMES].update_one({"_id": key}, {"$set": doc}, upsert=True)
    uow.emit(MeetingOutcomeRecorded(**{k: v for k, v in doc.items() if k != "updated_at"}))
    return {"_id": key, **doc}


# -- helpers ---------------------------------------------------------------------------


async def _event(uow: UnitOfWork, event_id: str) -> dict[str, Any]:
    return _known(await uow.db[EVENTS].find_one({"_id": event_id}), event_id)


async def _meeting(uow: UnitOfWork, meeting_id: str) -> dict[str, Any]:
    meeting: dict[str, Any] | None = await uow.db[MEETINGS].find_one({"_id": meeting_id})
    if meeting is None:
        raise NotFound(f"no meeting {meeting_id!r}")
    return meeting


async def _lock(uow: UnitOfWork, participant_ids: Iterable[str]) -> None:
    """Write to each participant's document so concurrent transactions on them conflict."""
    await uow.db[PARTICIPANTS].update_many(
        {"_id": {"$in": list(participant_ids)}}, {"$inc": {"meeting_writes": 1}}
    )


async def _save(uow: UnitOfWork, doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = await uow.db[MEETINGS].update_one(
        {"_id": doc["_id"], "version": doc["version"]},
        {"$set": changes, "$inc": {"version": 1}},
    )
    if result.matched_count == 0:
        raise NotNow("the meeting changed meanwhile; look again")
    return {**doc, **changes, "version": doc["version"] + 1}


async def _round(uow: UnitOfWork, event_id: str, parties: list[str]) -> int:
    """How many requests these parties made to each other before (cancelled ones)."""
    return int(
        await uow.db[MEETINGS].count_documents(
            {"event_id": event_id, "parties": {"$all": parties, "$size": len(parties)}}
        )
    )


def _meeting_id(event_id: str, parties: list[str], round_: int) -> str:
    """Deterministic: a retried request finds the one it made (the unique _id refuses twins)."""
    key = "/".join([event_id, parties[0], *sorted(parties[1:]), str(round_)])
    return "mt-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _fact(cls: type[_MeetingFacts], doc: dict[str, Any], by: str) -> _MeetingFacts:
    return cls(
        meeting_id=doc["_id"],
        event_id=doc["event_id"],
        requested_by=doc["requested_by"],
        parties=doc["parties"],
        answers=doc["answers"],
        status=doc["status"],
        by=by,
        message=doc.get("message"),
        priority=doc["priority"],
    )


async def ensure_indexes(db: Any) -> None:
    await db[MEETINGS].create_index([("event_id", 1), ("status", 1)])
    await db[MEETINGS].create_index("parties")
    await db[OUTCOMES].create_index("meeting_id")
