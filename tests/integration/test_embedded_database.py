"""The embedded database as `c2f up` runs it (`c2f_cli.stack.database_argv`): standalone, so
it keeps no oplog, and still with the transactions every unit of work relies on: a commit
stores all of its writes, an abort none, and a write that collides with another open
transaction is refused at once."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from c2f_cli.config import StackConfig
from c2f_cli.databases import Databases
from c2f_cli.processes import free_port, spawn, wait_for_port
from c2f_cli.stack import Stack, database_argv

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def standalone(tmp_path: Path) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    port = free_port()
    server = spawn("mongo", database_argv("127.0.0.1", port, tmp_path / "data"), tmp_path)
    try:
        wait_for_port(server, "127.0.0.1", port)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
        )
        yield client
        await client.close()
    finally:
        server.stop()


async def test_transactions_commit_and_abort_whole_and_no_oplog_is_kept(
    standalone: AsyncMongoClient[dict[str, Any]],
) -> None:
    db = standalone[f"embedded_{uuid.uuid4().hex[:8]}"]
    async with standalone.start_session() as session, await session.start_transaction():
        await db.items.insert_one({"_id": 1}, session=session)
        await db.outbox.insert_one({"_id": "e1", "published": False}, session=session)
    with pytest.raises(RuntimeError):
        async with standalone.start_session() as session, await session.start_transaction():
            await db.items.insert_one({"_id": 2}, session=session)
            raise RuntimeError("the handler failed")
    assert [d["_id"] async for d in db.items.find()] == [1]
    assert await db.outbox.count_documents({}) == 1

    async with standalone.start_session() as first, standalone.start_session() as second:
        await first.start_transaction()
        await db.items.update_one({"_id": 1}, {"$set": {"by": "first"}}, session=first)
        await second.start_transaction()
        with pytest.raises(OperationFailure) as collided:
            await db.items.update_one({"_id": 1}, {"$set": {"by": "second"}}, session=second)
        assert collided.value.has_error_label("TransientTransactionError")
        await second.abort_transaction()
        await first.commit_transaction()
    assert (await db.items.find_one({"_id": 1}) or {}).get("by") == "first"

    assert await standalone.local["oplog.rs"].count_documents({}) == 0


async def test_a_store_shared_by_every_service_is_split_without_losing_anything(tmp_path: Path) -> None:
    """$C2F_HOME/mongo from before each service had its own database server: each service's
    server starts with what was stored."""
    single = tmp_path / "mongo"
    port = free_port()
    server = spawn("mongo", database_argv("127.0.0.1", port, single), tmp_path)
    try:
        wait_for_port(server, "127.0.0.1", port)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
        )
        await client["c2f_registration"]["companies"].insert_one({"_id": "c1"})
        await client["c2f_matching"]["suggestions"].insert_one({"_id": "s1"})
        await client.close()
    finally:
        server.stop()

    stack = Stack(StackConfig.on_free_ports(tmp_path))
    stack.children += stack.start_databases()
    try:
        async with Databases(stack.config) as databases:
            assert await databases["c2f_registration"]["companies"].distinct("_id") == ["c1"]
            assert await databases["c2f_matching"]["suggestions"].distinct("_id") == ["s1"]
        assert sorted(p.name for p in single.iterdir()) == sorted(stack.config.database_ports)
        assert not (tmp_path / "mongo.single").exists()
    finally:
        stack.stop()
