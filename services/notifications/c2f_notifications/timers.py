"""Messages that come later: stored timers (so they survive restarts), fired when due. A
timer checks that its reason still holds (the meeting still at that time, the request still
unanswered) before it queues anything; several instances never fire the same timer."""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from c2f_notifications.outgoing import queue
from c2f_notifications.store import DIGEST_ITEMS, MEETINGS, RECIPIENTS, TIMERS
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.apart import update_apart

LEASE = timedelta(seconds=60)
DUE_MAX = 50  # due timers read at once (each is leased and fired on its own)


async def fire_due(runtime: Runtime) -> int:
    """Fire every timer that is due; returns how many fired. A timer a killed instance had
    claimed ("firing") is pending again once its lease has run out."""
    now = datetime.now(UTC)
    await update_apart(
        runtime.db[TIMERS], {"status": "firing", "lease_until": {"$lt": now}}, {"$set": {"status": "pending"}}
    )
    fired = 0
    while due := await _due(runtime):
        for timer in due:
            # Leased one at a time, just before it fires: a killed instance holds one timer
            # until its lease runs out, not all it had read.
            claimed = await runtime.db[TIMERS].find_one_and_update(
                {"_id": timer["_id"], "status": "pending"},
                {"$set": {"status": "firing", "lease_until": datetime.now(UTC) + LEASE}},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is None:
                continue  # another instance took it
            await fire(runtime, claimed)
            fired += 1
        if len(due) < DUE_MAX:
            return fired
    return fired


async def _due(runtime: Runtime) -> list[dict[str, Any]]:
    """Up to DUE_MAX due timers, the earliest first, in one read (the embedded database reads
    every due timer to sort them: once for a handful rather than once per timer)."""
    return (
        await runtime.db[TIMERS]
        .find({"status": "pending", "due_at": {"$lte": datetime.now(UTC)}}, {"_id": 1})
        .sort("due_at", 1)
        .limit(DUE_MAX)
        .to_list(None)
    )


async def fire(runtime: Runtime, claimed: dict[str, Any]) -> None:
    """Fire a timer this instance claimed. While messages are handled, not while an erasure is
    (it is handled alone): a timer fired at the same moment could queue a message naming a
    participant the erasure was removing (neither transaction writes what the other reads)."""

    async def work(uow: UnitOfWork) -> None:
        await _FIRE[claimed["kind"]](uow, claimed)
        current = await uow.db[TIMERS].find_one({"_id": claimed["_id"], "status": "firing"})
        if current is not None and current.get("again_at") is not None:
            # Something came for it while it fired (a suggestion for the next digest).
            done: dict[str, Any] = {
                "$set": {"status": "pending", "due_at": current["again_at"]},
                "$unset": {"again_at": "", "lease_until": ""},
            }
        else:
            done = {"$set": {"status": "done", "fired_at": datetime.now(UTC)}}
        await uow.db[TIMERS].update_one({"_id": claimed["_id"], "status": "firing"}, done)

    async with runtime.gate.shared():
        await runtime.transact(work)


async def _digest(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    recipient = timer["recipient_id"]
    items = (
        await uow.db[DIGEST_ITEMS]
        .find({"recipient_id": recipient, "digest": None})
        .sort("created_at", 1)
        .to_list(None)
    )
    if not items:
        return
    digest = hashlib.sha256("|".join(sorted(i["_id"] for i in items)).encode()).hexdigest()[:16]
    facts = [i["fact"] for i in items]
    await queue(
        uow, "suggestions_digest", digest, recipient, {"event_id": facts[0]["event_id"], "items": facts}
    )
    await uow.db[DIGEST_ITEMS].update_many(
        {"_id": {"$in": [i["_id"] for i in items]}}, {"$set": {"digest": digest}}
    )
    # On the timer too: the participant's sign-up may not have reached us yet (another topic).
    sent_at = datetime.now(UTC)
    await uow.db[TIMERS].update_one({"_id": timer["_id"]}, {"$set": {"last_sent_at": sent_at}})
    await uow.db[RECIPIENTS].update_one({"_id": recipient}, {"$set": {"last_digest_at": sent_at}})


async def _reminder(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    data = timer["data"]
    meeting = await uow.db[MEETINGS].find_one({"_id": data["meeting_id"]})
    if meeting is None or meeting.get("status") == "cancelled" or meeting.get("sequence") != data["sequence"]:
        return  # moved (a new reminder was set) or called off
    about = f"{data['meeting_id']}:{data['offset']}:{data['sequence']}"
    await queue(uow, "reminder", about, timer["recipient_id"], data)


async def _nudge(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    data, me = timer["data"], timer["recipient_id"]
    meeting = await uow.db[MEETINGS].find_one({"_id": data["meeting_id"]})
    if meeting is None or meeting.get("status") != "requested" or meeting["answers"].get(me) != "requested":
        return
    nudge = {
        "event_id": meeting["event_id"],
        "meetings": [{"id": meeting["_id"], "requester": meeting["requested_by"]}],
    }
    await queue(uow, "nudge", meeting["_id"], me, nudge)


async def _outcome_request(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    me, event_id = timer["recipient_id"], timer["data"]["event_id"]
    meetings = [
        {"id": m["_id"], "parties": m["parties"], "placement": m["placement"]}
        async for m in uow.db[MEETINGS].find(
            {"event_id": event_id, "parties": me, "placement": {"$ne": None}, "status": {"$ne": "cancelled"}},
        )
    ]
    if meetings:
        await queue(uow, "outcome_request", event_id, me, {"event_id": event_id, "meetings": meetings})


_FIRE = {
    "suggestions_digest": _digest,
    "reminder": _reminder,
    "nudge": _nudge,
    "outcome_request": _outcome_request,
}
