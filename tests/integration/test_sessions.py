"""Transactions take turns, on the embedded database: however many are asked for at once, a
client runs at most its bound together and reuses that many sessions (the embedded database
walks every session it has ever seen on each transactional statement), and a transaction
opened inside another does not wait for its own caller's turn."""

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from c2f_shared.service import sessions
from c2f_shared.service.apart import update_apart

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_fifty_transactions_at_once_run_three_at_a_time_in_three_sessions(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    sessions.bound(client, 3)
    coll = client[f"sessions_{uuid.uuid4().hex[:8]}"]["items"]
    running, most = 0, 0
    used: set[bytes] = set()  # the sessions' ids

    async def one(i: int) -> None:
        nonlocal running, most
        async with sessions.transaction_session(client) as session:
            running += 1
            most = max(most, running)
            used.add(bytes(session.session_id["id"]))

            async def insert(session: Any) -> None:
                await coll.insert_one({"_id": i}, session=session)

            await session.with_transaction(insert)  # again after a write conflict
            await asyncio.sleep(0.01)  # others ask meanwhile
            running -= 1

    await asyncio.gather(*(one(i) for i in range(50)))
    assert await coll.count_documents({}) == 50, "every transaction committed"
    assert most == 3
    assert len(used) <= 3, f"{len(used)} sessions used for 50 transactions"


async def test_a_transaction_opened_inside_another_does_not_wait_for_its_callers_turn(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    sessions.bound(client, 1)
    coll = client[f"sessions_{uuid.uuid4().hex[:8]}"]["items"]
    await coll.insert_many([{"_id": i, "status": "new"} for i in range(3)])
    async with asyncio.timeout(20):
        async with sessions.transaction_session(client) as session, await session.start_transaction():
            await coll.insert_one({"_id": 9, "status": "new"}, session=session)
            # A write apart (a transaction of its own), asked for while this one holds the turn.
            assert await update_apart(coll, {"status": "new"}, {"$set": {"status": "seen"}}) == 3
    assert await coll.count_documents({"status": "seen"}) == 3
    assert await coll.count_documents({}) == 4
