"""What notifications sends, queued: one entry per message (kind, fact, recipient) whose id is
its dedupe key, so the same person is never told the same thing twice, and timers for messages
that come later (digests, reminders, nudges, outcome requests). The consumers, the timers and
the API queue through here; `delivery` sends what is queued."""

import zlib
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from c2f_notifications.messages import ESSENTIAL
from c2f_notifications.store import ERASURES, OUTGOING, RECIPIENTS, TIMERS, WEBHOOKS
from c2f_shared.service import UnitOfWork, tracing
from c2f_shared.times import now

# Queued messages are spread over this many lanes, by id. Catching up on a long queue, delivery
# claims from one lane at a time: the embedded database reads every entry a query's index
# range holds, whatever its limit, so a claim from the whole queue cost as much as reading it.
LANES = 8


def dedupe_key(kind: str, about_id: str, recipient_id: str) -> str:
    return f"{kind}:{about_id}:{recipient_id}"


def lane_of(message_id: str) -> int:
    return zlib.crc32(message_id.encode()) % LANES


async def queue(
    uow: UnitOfWork,
    kind: str,
    about_id: str,
    recipient_id: str,
    data: dict[str, Any],
    correlation_id: str | None = None,
    recipient: dict[str, Any] | None = None,
) -> bool:
    """Queue one e-mail (once: the dedupe key is the _id), and a copy for the recipient's
    cluster's webhook if it has one; whether it was queued (optional kinds the recipient muted
    are not, nor messages to someone erased). Stored with the unit of work's other writes, as
    one insert of every message it queues (`insert_later`: an entry whose key is stored
    already is left as it is). `recipient`: its document as the caller has just written it
    (else it is read)."""
    if recipient is None:
        recipient = await uow.db[RECIPIENTS].find_one({"_id": recipient_id})
    if recipient is not None and kind not in ESSENTIAL and kind in recipient.get("muted", []):
        return False
    if recipient is None and await uow.db[ERASURES].find_one({"participants": recipient_id}):
        return False  # erased (a fact in flight, e.g. the meeting its erasure cancelled): nobody to tell
    at = now()
    key = dedupe_key(kind, about_id, recipient_id)
    entry: dict[str, Any] = {
        "kind": kind,
        "about_id": about_id,
        "recipient_id": recipient_id,
        "event_id": data.get("event_id") or (recipient or {}).get("event_id"),
        "data": data,
        "correlation_id": correlation_id,
        "trace": tracing.carrier(),  # its send continues the trace of what caused it
        "status": "pending",
        "attempts": 0,
        "tries": [],
        "next_attempt_at": at,
        "created_at": at,
    }
    uow.db[OUTGOING].insert_later({"_id": key, **entry, "channel": "email", "waits": 0, "lane": lane_of(key)})
    hook = await _webhook(uow, (recipient or {}).get("cluster_id"))
    if hook is not None:
        # The cluster's own system hears the same fact (ids and what happened; no contact data).
        copy = f"webhook:{key}"
        uow.db[OUTGOING].insert_later(
            {"_id": copy, **entry, "channel": "webhook", "cluster_id": hook["_id"], "lane": lane_of(copy)}
        )
    return True


async def _webhook(uow: UnitOfWork, cluster_id: str | None) -> dict[str, Any] | None:
    """The cluster's webhook, if it has one. Every cluster's is read at once, at the first
    message a unit of work queues (one per cluster at most: a short read), rather than one
    read per cluster its messages go to."""
    hooks: dict[str, dict[str, Any]] | None = uow.local.get(_WEBHOOKS)
    if hooks is None:
        hooks = uow.local[_WEBHOOKS] = {h["_id"]: h async for h in uow.db[WEBHOOKS].find()}
    return hooks.get(cluster_id) if cluster_id is not None else None


_WEBHOOKS = "notifications.webhooks"  # UnitOfWork.local: cluster id -> its webhook


def timer(
    uow: UnitOfWork, timer_id: str, kind: str, recipient_id: str, due_at: datetime, data: dict[str, Any]
) -> None:
    """Something to send later; setting it again moves it (a meeting that moved). Written with
    the unit of work's other timers (`write_later`)."""
    uow.db[TIMERS].write_later(
        UpdateOne(
            {"_id": timer_id},
            {
                "$set": {
                    "kind": kind,
                    "recipient_id": recipient_id,
                    "due_at": due_at,
                    "data": data,
                    "status": "pending",
                },
                "$setOnInsert": {"created_at": now()},
            },
            upsert=True,
        )
    )


async def cancel_timers(uow: UnitOfWork, query: dict[str, Any]) -> None:
    await uow.db[TIMERS].update_many({**query, "status": "pending"}, {"$set": {"status": "cancelled"}})
