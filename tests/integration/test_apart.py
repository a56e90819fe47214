"""A write to many documents outside a unit of work beside a transaction on the same
collection, on the embedded database: `update_apart` (a transaction of its own) lets the
transaction finish, where a plain multi-document update would hold the collection's lock
while it waits for that transaction (which waits for the lock): under load this stood the
notifications service still for minutes."""

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from c2f_shared.service.apart import update_apart

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_transaction_finishes_beside_a_write_outside_it_on_the_same_documents(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    coll = client[f"apart_{uuid.uuid4().hex[:8]}"]["timers"]
    await coll.insert_many([{"_id": f"t{i}", "status": "firing"} for i in range(5)])
    outside_done = asyncio.Event()

    async with client.start_session() as session:
        await session.start_transaction()
        # The transaction changes one of the documents the write outside it is after ...
        await coll.update_one({"_id": "t2"}, {"$set": {"status": "moved"}}, session=session)
        outside = asyncio.create_task(
            update_apart(coll, {"status": "firing"}, {"$set": {"status": "pending"}})
        )
        outside.add_done_callback(lambda _: outside_done.set())
        await asyncio.sleep(0.3)  # the write outside is under way and meets the conflict
        # ... and then writes the collection again and commits: it must not wait for the other.
        async with asyncio.timeout(20):
            await coll.insert_one({"_id": "t9", "status": "pending"}, session=session)
            await session.commit_transaction()
    async with asyncio.timeout(20):
        await outside_done.wait()
    assert outside.result() == 4, "every document the transaction left alone changed"
    states = {d["_id"]: d["status"] async for d in coll.find()}
    assert states == {
        "t0": "pending",
        "t1": "pending",
        "t2": "moved",
        "t3": "pending",
        "t4": "pending",
        "t9": "pending",
    }


async def test_by_ids_only_those_still_matching_change_and_a_change_meanwhile_is_seen(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    """With `ids` and an equality filter, the documents are read by id and updated by id: those
    that no longer match (or were never there) are left alone, and one changed by a transaction
    while the update runs is judged as that transaction left it."""
    coll = client[f"apart_{uuid.uuid4().hex[:8]}"]["outgoing"]
    await coll.insert_many([{"_id": f"m{i}", "status": "pending", "n": i} for i in range(6)])
    await coll.update_one({"_id": "m1"}, {"$set": {"status": "sent"}})
    changed = await update_apart(
        coll, {"status": "pending"}, {"$set": {"status": "leased"}}, ids=["m0", "m1", "m2", "missing"]
    )
    assert changed == 2
    async with client.start_session() as session:
        await session.start_transaction()
        await coll.update_one({"_id": "m3"}, {"$set": {"status": "sent"}}, session=session)
        lease = asyncio.create_task(
            update_apart(coll, {"status": "pending"}, {"$set": {"status": "leased"}}, ids=["m3", "m4"])
        )
        await asyncio.sleep(0.3)  # under way: it meets the transaction's write and tries again
        await session.commit_transaction()
    async with asyncio.timeout(20):
        assert await lease == 1
    states = {d["_id"]: d["status"] async for d in coll.find()}
    assert states == {
        "m0": "leased",
        "m1": "sent",
        "m2": "leased",
        "m3": "sent",
        "m4": "leased",
        "m5": "pending",
    }


async def test_by_ids_without_a_filter_changes_exactly_those_ids(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    """The outbox's marks: every listed document that exists changes, whatever it holds; the
    others, and ids that were never there, are left alone."""
    coll = client[f"apart_{uuid.uuid4().hex[:8]}"]["outbox"]
    await coll.insert_many([{"_id": f"e{i}", "published": i == 1} for i in range(4)])
    marks = {"$set": {"published": True, "marked": True}}
    assert await update_apart(coll, {}, marks, ids=["e0", "e1", "e2", "missing"]) == 3
    assert await update_apart(coll, {}, marks, ids=[]) == 0
    states = {d["_id"]: (d["published"], d.get("marked", False)) async for d in coll.find()}
    assert states == {"e0": (True, True), "e1": (True, True), "e2": (True, True), "e3": (False, False)}
