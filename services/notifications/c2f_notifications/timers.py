"""Messages that come later: stored timers (so they survive restarts), fired when due. A
timer checks that its reason still holds (the meeting still at that time, the request still
unanswered) before it queues anything; several instances never fire the same timer."""

import contextlib
import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import UpdateMany, UpdateOne

from c2f_notifications.outgoing import queue
from c2f_notifications.store import DIGEST_ITEMS, MEETINGS, RECIPIENTS, TIMERS
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.apart import update_apart

LEASE = timedelta(seconds=60)
DUE_MAX = 50  # due timers read at once
TOGETHER = 10  # due timers leased together and fired in one transaction
MAX_FAILURES = 5  # tries, a lease apart, before a timer that fails to fire is set aside
WAIT_S = 10.0  # the longest a statement or a transaction of a round may take (fire_some)

log = logging.getLogger(__name__)


async def fire_due(runtime: Runtime) -> int:
    """Fire every timer that is due; returns how many fired."""
    total, more = 0, True
    while more:
        fired, more = await fire_some(runtime)
        total += fired
    return total


async def fire_some(runtime: Runtime) -> tuple[int, bool]:
    """Fire the earliest due timers, up to DUE_MAX (one read's worth): how many fired, and
    whether more may be due. The delivery loop fires a round at a time, so that thousands of
    digests due together do not hold back the messages it claims between rounds. A timer a
    killed instance had claimed ("firing") is pending again once its lease has run out.

    Each statement and transaction is bounded by WAIT_S on its own (on the embedded database a
    statement can wait for a transaction a killed instance left open); a bound on the whole
    round failed every timer after the first ten seconds of a long one."""
    with pymongo.timeout(WAIT_S):
        expired = {"status": "firing", "lease_until": {"$lt": datetime.now(UTC)}}
        if await runtime.db[TIMERS].find_one(expired, {"_id": 1}):  # a read, not a write, when none is
            await update_apart(runtime.db[TIMERS], expired, {"$set": {"status": "pending"}})
        due = await _due(runtime)
    fired = 0
    for at in range(0, len(due), TOGETHER):
        # Leased just before they fire: a killed instance holds a few timers until their
        # lease runs out, not all it had read.
        with pymongo.timeout(WAIT_S):
            claimed = await _lease(runtime, due[at : at + TOGETHER])
        fired += await _fire_together(runtime, claimed)
    return fired, len(due) == DUE_MAX


async def _due(runtime: Runtime) -> list[dict[str, Any]]:
    """Up to DUE_MAX due timers, the earliest first, in one read (the embedded database reads
    every due timer to sort them: once for a handful rather than once per timer)."""
    return (
        await runtime.db[TIMERS]
        .find({"status": "pending", "due_at": {"$lte": datetime.now(UTC)}})
        .sort("due_at", 1)
        .limit(DUE_MAX)
        .to_list(None)
    )


async def _lease(runtime: Runtime, due: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claim those of the `due` timers still pending for this instance; the timers it got
    (another instance may have taken some meanwhile: then they are read again)."""
    ids = [timer["_id"] for timer in due]
    lease = uuid.uuid4().hex
    until = datetime.now(UTC) + LEASE
    leased = await update_apart(
        runtime.db[TIMERS],
        {"status": "pending"},
        {"$set": {"status": "firing", "lease_until": until, "lease": lease}},
        ids=ids,
    )
    if leased == len(ids):
        return [{**timer, "status": "firing", "lease_until": until, "lease": lease} for timer in due]
    claimed = {t["_id"]: t async for t in runtime.db[TIMERS].find({"_id": {"$in": ids}, "lease": lease})}
    return [claimed[i] for i in ids if i in claimed]


async def _fire_together(runtime: Runtime, claimed: list[dict[str, Any]]) -> int:
    """Fire timers this instance claimed in one transaction; if that fails, each in one of its
    own, so that a timer that cannot fire holds back no other (it is tried again once its
    lease has run out). How many fired."""
    if len(claimed) > 1:
        with contextlib.suppress(Exception):
            await fire(runtime, *claimed)
            return len(claimed)
    fired = 0
    for timer in claimed:
        try:
            await fire(runtime, timer)
            fired += 1
        except Exception as error:  # noqa: BLE001 - logged and counted (_failed)
            await _failed(runtime, timer, error)
    return fired


async def _failed(runtime: Runtime, timer: dict[str, Any], error: Exception) -> None:
    """A timer that failed to fire is tried again once its lease has run out; after
    MAX_FAILURES tries it is set aside ("failed", with the reason): one that can never fire (a
    kind this version does not know) is not tried every lease forever."""
    failures = timer.get("failures", 0) + 1
    reason = f"{type(error).__name__}: {error}"
    if failures >= MAX_FAILURES:
        log.exception(
            "timer %s (%s) failed to fire %d times; set aside", timer["_id"], timer["kind"], failures
        )
        change: dict[str, Any] = {
            "$set": {
                "status": "failed",
                "failures": failures,
                "reason": f"{failures} tries failed; last: {reason}",
            },
            "$unset": {"lease": "", "lease_until": ""},
        }
    else:
        log.exception("timer %s (%s) failed to fire; tried again in %s", timer["_id"], timer["kind"], LEASE)
        change = {"$set": {"failures": failures, "reason": reason}}
    with contextlib.suppress(Exception), pymongo.timeout(WAIT_S):  # if not, it is tried again all the same
        await runtime.db[TIMERS].update_one({"_id": timer["_id"], "lease": timer["lease"]}, change)


async def fire(runtime: Runtime, *claimed: dict[str, Any]) -> None:
    """Fire timers this instance claimed, in one transaction. While messages are handled, not
    while an erasure is (it is handled alone): a timer fired at the same moment could queue a
    message naming a participant the erasure was removing (neither transaction writes what
    the other reads)."""
    ids = [timer["_id"] for timer in claimed]

    async def work(uow: UnitOfWork) -> None:
        # Something may have come for one while it was due (a suggestion for the next digest,
        # `again_at`). Read first, in the transaction's snapshot: what comes later writes the
        # timer too, so one of the two transactions runs again and sees the other.
        current = {
            t["_id"]: t
            async for t in uow.db[TIMERS].find({"_id": {"$in": ids}, "status": "firing"}, {"again_at": 1})
        }
        uow.local[_FIRING] = claimed
        for timer in claimed:
            await _FIRE[timer["kind"]](uow, timer)
        fired_at = datetime.now(UTC)
        for timer_id, timer in current.items():
            if timer.get("again_at") is not None:
                done: dict[str, Any] = {
                    "$set": {"status": "pending", "due_at": timer["again_at"]},
                    "$unset": {"again_at": "", "lease_until": "", "lease": ""},
                }
            else:
                done = {"$set": {"status": "done", "fired_at": fired_at}, "$unset": {"lease": ""}}
            uow.db[TIMERS].write_later(UpdateOne({"_id": timer_id, "status": "firing"}, done))

    async with runtime.gate.shared():
        with pymongo.timeout(WAIT_S):
            await runtime.transact(work)


_FIRING = "timers.firing"  # UnitOfWork.local: the timers fired together in it


async def _digest(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    recipient = timer["recipient_id"]
    items, person = await _digests_of(uow, recipient)
    if not items:
        return
    digest = hashlib.sha256("|".join(sorted(i["_id"] for i in items)).encode()).hexdigest()[:16]
    facts = [i["fact"] for i in items]
    await queue(
        uow,
        "suggestions_digest",
        digest,
        recipient,
        {"event_id": facts[0]["event_id"], "items": facts},
        recipient=person,
    )
    uow.db[DIGEST_ITEMS].write_later(
        UpdateMany({"_id": {"$in": [i["_id"] for i in items]}}, {"$set": {"digest": digest}})
    )
    # On the timer too: the participant's sign-up may not have reached us yet (another topic).
    sent_at = datetime.now(UTC)
    uow.db[TIMERS].write_later(UpdateOne({"_id": timer["_id"]}, {"$set": {"last_sent_at": sent_at}}))
    if person is not None:
        uow.db[RECIPIENTS].write_later(UpdateOne({"_id": recipient}, {"$set": {"last_digest_at": sent_at}}))


async def _digests_of(uow: UnitOfWork, recipient: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The suggestions waiting for `recipient`'s digest, oldest first, and its recipient
    document (None: its sign-up has not reached us, or it was erased); read at once for every
    digest fired together (two statements for all of them)."""
    read: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]] | None = uow.local.get(_DIGESTS)
    if read is None or recipient not in read:
        firing = uow.local.get(_FIRING, [])
        wanted = list({recipient, *(t["recipient_id"] for t in firing if t["kind"] == "suggestions_digest")})
        items: dict[str, list[dict[str, Any]]] = {r: [] for r in wanted}
        async for item in (
            uow.db[DIGEST_ITEMS].find({"recipient_id": {"$in": wanted}, "digest": None}).sort("created_at", 1)
        ):
            items[item["recipient_id"]].append(item)
        people = {p["_id"]: p async for p in uow.db[RECIPIENTS].find({"_id": {"$in": wanted}})}
        read = uow.local[_DIGESTS] = {r: (items[r], people.get(r)) for r in wanted}
    return read[recipient]


_DIGESTS = "timers.digests"  # UnitOfWork.local: recipient -> (its digest items, its document)


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
