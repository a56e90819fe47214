"""The service runtime on the real broker and database: each event processed once,
poison messages set aside with a reason, events published only when their change commits."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from pymongo import UpdateOne
from pymongo.errors import OperationFailure

from c2f_cli.stack import Stack
from c2f_shared import topics
from c2f_shared.envelope import Envelope
from c2f_shared.events import ClusterRegistered, CompanyErased, Event
from c2f_shared.service import Runtime, UnitOfWork, pipeline
from c2f_shared.service.dead_letters import StillFailing
from c2f_shared.service.pipeline import MAX_ATTEMPTS, PoisonMessage
from tests.support import eventually, isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def cluster(short_name: str) -> ClusterRegistered:
    return ClusterRegistered(
        cluster_id=str(uuid.uuid4()),
        name=f"{short_name} cluster",
        short_name=short_name,
        country="RS",
        sectors=["ict"],
        membership="founding",
    )


@asynccontextmanager
async def running(infra: Stack, handler: Any, topic: str) -> AsyncIterator[Runtime]:
    """A runtime whose consumer takes ClusterRegistered from `topic` with `handler`."""
    runtime = Runtime(isolated_settings(infra, "test"), service="test")
    runtime.consume({ClusterRegistered: handler}, name="test", topics=[topic])
    async with runtime.lifespan(FastAPI()):
        await eventually(lambda: _ready(runtime))
        yield runtime


async def _ready(runtime: Runtime) -> bool:
    return bool((await runtime.readiness())["ready"])


@asynccontextmanager
async def producer(infra: Stack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=infra.config.kafka_bootstrap, acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def recording(seen: list[str]) -> Callable[[Event, Envelope, UnitOfWork], Awaitable[None]]:
    async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(event, ClusterRegistered)
        await uow.db["seen"].insert_one({"short_name": event.short_name})
        seen.append(event.short_name)

    return handle


async def test_a_redelivered_event_is_processed_once(infra: Stack) -> None:
    topic = f"test.redelivery.{uuid.uuid4().hex}"
    seen: list[str] = []
    envelope = Envelope.wrap(cluster("ONCE"), producer="test", correlation_id="c")
    async with running(infra, recording(seen), topic) as runtime, producer(infra) as p:
        for _ in range(3):
            await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")
        after = Envelope.wrap(cluster("AFTER"), producer="test", correlation_id="c")
        await p.send_and_wait(topic, after.model_dump_json().encode(), key=b"k")
        await eventually(lambda: "AFTER" in seen)
        assert seen == ["ONCE", "AFTER"]
        assert await runtime.db["seen"].count_documents({}) == 2


async def test_a_poison_message_is_dead_lettered_and_the_consumer_goes_on(infra: Stack) -> None:
    topic = f"test.poison.{uuid.uuid4().hex}"
    seen: list[str] = []
    good = Envelope.wrap(cluster("GOOD"), producer="test", correlation_id="c")
    missing_field = json.loads(good.model_dump_json())
    del missing_field["data"]["short_name"]
    async with running(infra, recording(seen), topic) as runtime, producer(infra) as p:
        await p.send_and_wait(topic, b"\xff not json", key=b"k")
        await p.send_and_wait(topic, json.dumps(missing_field).encode(), key=b"k")
        await p.send_and_wait(topic, good.model_dump_json().encode(), key=b"k")
        await eventually(lambda: "GOOD" in seen)
        letters = await runtime.db["dead_letters"].find().sort("offset").to_list(None)
        assert [d["topic"] for d in letters] == [topic, topic]
        assert letters[0]["reason"].startswith("invalid envelope: body: Invalid JSON")
        assert letters[1]["reason"] == "invalid ClusterRegistered v1: data.short_name: Field required"
        assert letters[0]["payload"].endswith("not json")
        # ... and the dead letter is published for operators and reporting.
        assert await runtime.db["outbox"].count_documents({"topic": topics.DEAD_LETTERS}) == 2


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(infra: Stack) -> None:
    topic = f"test.failing.{uuid.uuid4().hex}"
    attempts: list[str] = []

    async def flaky(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(event, ClusterRegistered)
        attempts.append(event.short_name)
        if event.short_name == "BROKEN":
            raise RuntimeError("downstream is broken")
        if event.short_name == "FLAKY" and attempts.count("FLAKY") < 3:
            raise ConnectionError("try again")

    async with running(infra, flaky, topic) as runtime, producer(infra) as p:
        for name in ("FLAKY", "BROKEN", "LAST"):
            envelope = Envelope.wrap(cluster(name), producer="test", correlation_id="c")
            await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")
        await eventually(lambda: "LAST" in attempts, within=60)
        assert attempts.count("FLAKY") == 3
        assert attempts.count("BROKEN") == 5
        letter = await runtime.db["dead_letters"].find_one({"topic": topic})
        assert letter is not None and "RuntimeError: downstream is broken" in letter["reason"]
        assert await runtime.db["processed_events"].count_documents({}) == 2


async def test_a_message_the_database_cannot_take_yet_is_retried_not_dead_lettered(
    infra: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write conflict (e.g. with a transaction a killed instance left open) says "not now":
    however often it happens, the message is retried, never set aside."""
    monkeypatch.setattr(pipeline, "TRANSIENT_PAUSE_MAX_S", 0.5)  # the pauses do not matter here
    topic = f"test.busy.{uuid.uuid4().hex}"
    attempts: list[str] = []

    async def busy(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        attempts.append(envelope.event_id)
        if len(attempts) <= MAX_ATTEMPTS + 1:
            raise OperationFailure("WriteConflict", code=112)

    async with running(infra, busy, topic) as runtime, producer(infra) as p:
        envelope = Envelope.wrap(cluster("BUSY"), producer="test", correlation_id="c")
        await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")

        async def processed() -> bool:
            return await runtime.db["processed_events"].count_documents({"_id": envelope.event_id}) == 1

        await eventually(processed, within=90)
        assert len(attempts) > MAX_ATTEMPTS
        assert await runtime.db["dead_letters"].count_documents({"topic": topic}) == 0


async def test_events_are_published_only_when_the_change_commits(infra: Stack) -> None:
    committed, rolled_back = cluster("COMMITTED"), cluster("ROLLEDBACK")
    async with running(infra, recording([]), f"test.idle.{uuid.uuid4().hex}") as runtime:
        consumer = AIOKafkaConsumer(
            topics.CLUSTERS, bootstrap_servers=infra.config.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            with pytest.raises(RuntimeError):
                async with runtime.unit_of_work("c") as uow:
                    await uow.db["clusters"].insert_one({"_id": rolled_back.cluster_id})
                    uow.emit(rolled_back)
                    raise RuntimeError("validation failed half-way")
            async with runtime.unit_of_work("c") as uow:
                await uow.db["clusters"].insert_one({"_id": committed.cluster_id})
                envelope = uow.emit(committed)
            received: list[Envelope] = []
            while not any(e.event_id == envelope.event_id for e in received):
                batch = await consumer.getmany(timeout_ms=1000)
                received += [Envelope.model_validate_json(r.value) for rs in batch.values() for r in rs]
            keys = {e.key for e in received}
            assert committed.cluster_id in keys and rolled_back.cluster_id not in keys
            assert await runtime.db["clusters"].count_documents({}) == 1
            assert await runtime.outbox.pending() == 0
        finally:
            await consumer.stop()


async def test_events_the_handler_does_not_take_are_acknowledged_without_work(infra: Stack) -> None:
    topic = f"test.only.{uuid.uuid4().hex}"
    seen: list[str] = []
    ignored = Envelope.wrap(
        CompanyErased(company_id="x", cluster_id="y"), producer="test", correlation_id="c"
    )
    taken = Envelope.wrap(cluster("TAKEN"), producer="test", correlation_id="c")
    async with (
        running(infra, recording(seen), topic) as runtime,
        producer(infra) as p,
    ):
        for envelope in (ignored, taken):
            await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")
        inbox = runtime.db["processed_events"]
        await eventually(lambda: _count(inbox, {}, 1))  # committed, not only handled
        assert seen == ["TAKEN"]
        assert [d["_id"] async for d in inbox.find()] == [taken.event_id]


async def test_a_dead_letter_is_re_driven_once_its_cause_is_fixed(infra: Stack) -> None:
    topic = f"test.redrive.{uuid.uuid4().hex}"
    fixed = False
    handled: list[str] = []

    async def until_fixed(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(event, ClusterRegistered)
        if not fixed:
            raise RuntimeError("a bug in this version")
        await uow.db["seen"].insert_one({"short_name": event.short_name})
        handled.append(event.short_name)

    envelope = Envelope.wrap(cluster("LATER"), producer="test", correlation_id="c")
    async with running(infra, until_fixed, topic) as runtime, producer(infra) as p:
        await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")
        await p.send_and_wait(topic, b"not an envelope", key=b"k")
        letters = runtime.db["dead_letters"]
        await eventually(lambda: _count(letters, {"topic": topic}, 2), within=60)
        failing = await letters.find_one({"topic": topic, "reason": {"$regex": "^failed"}})
        poison = await letters.find_one({"topic": topic, "reason": {"$regex": "^invalid envelope"}})
        assert failing is not None and poison is not None

        with pytest.raises(StillFailing, match="RuntimeError: a bug in this version"):
            await runtime.dead_letters.redrive(failing["_id"])
        with pytest.raises(PoisonMessage, match="invalid envelope"):
            await runtime.dead_letters.redrive(poison["_id"])
        with pytest.raises(LookupError):
            await runtime.dead_letters.redrive("no-such-letter")

        fixed = True  # the new version is deployed
        redriven = await runtime.dead_letters.redrive(failing["_id"])
        assert redriven["redrive_outcome"] == "processed" and redriven["redriven_at"] is not None
        assert handled == ["LATER"]
        again = await runtime.dead_letters.redrive(failing["_id"])  # twice changes nothing
        assert again["redriven_at"] == redriven["redriven_at"] and handled == ["LATER"]
        assert await runtime.db["seen"].count_documents({}) == 1
        untouched = await letters.find_one({"_id": poison["_id"]})
        assert untouched is not None and untouched.get("redriven_at") is None


async def _count(collection: Any, query: dict[str, Any], n: int) -> bool:
    return bool(await collection.count_documents(query) == n)


async def test_transactions_that_write_the_same_document_at_once_all_commit(infra: Stack) -> None:
    """A write conflict is run again as a whole, as MongoDB's label says it may be (the embedded
    server leaves the label out): eight transactions that each read a counter, wait, and
    write it back plus one all commit, and the counter counts eight."""
    runtime = Runtime(isolated_settings(infra, "conflicts"), service="test")
    async with runtime.lifespan(FastAPI()):
        await runtime.db["counters"].insert_one({"_id": "c", "n": 0})
        tries = 0

        async def bump(uow: UnitOfWork) -> None:
            nonlocal tries
            tries += 1
            seen = await uow.db["counters"].find_one({"_id": "c"})
            assert seen is not None
            await asyncio.sleep(0.05)  # the others read the same value meanwhile
            await uow.db["counters"].update_one({"_id": "c"}, {"$set": {"n": seen["n"] + 1}})

        await asyncio.gather(*(runtime.transact(bump) for _ in range(8)))
        assert (await runtime.db["counters"].find_one({"_id": "c"}) or {})["n"] == 8
        assert tries > 8  # they did collide, and ran again


async def test_writes_kept_for_later_are_sent_in_order_before_reads_and_the_commit(infra: Stack) -> None:
    """`write_later` sends a unit of work's writes to a collection in one bulk write: a read of
    that collection (find_one, a cursor, a count) sees them, a write after them applies after
    them, they commit with the unit of work, and an aborted one leaves none of them."""
    runtime = Runtime(isolated_settings(infra, "later"), service="test")
    async with runtime.lifespan(FastAPI()):

        async def work(uow: UnitOfWork) -> list[Any]:
            people = uow.db["people"]
            people.write_later(UpdateOne({"_id": "a"}, {"$set": {"n": 1}}, upsert=True))
            people.write_later(UpdateOne({"_id": "b"}, {"$set": {"n": 2}}, upsert=True))
            listed = [d["_id"] async for d in people.find({}).sort("_id", -1)]
            people.write_later(UpdateOne({"_id": "a"}, {"$inc": {"n": 10}}))
            one = await people.find_one({"_id": "a"})
            people.write_later(UpdateOne({"_id": "c"}, {"$set": {"n": 3}}, upsert=True))
            await people.update_one({"_id": "c"}, {"$inc": {"n": 100}})  # after the kept upsert
            people.write_later(UpdateOne({"_id": "d"}, {"$set": {"n": 4}}, upsert=True))
            assert await runtime.db["people"].count_documents({}) == 0  # nothing outside yet
            return [listed, one, await people.count_documents({})]

        listed, one, counted = await runtime.transact(work)
        assert listed == ["b", "a"]
        assert one == {"_id": "a", "n": 11}
        assert counted == 4
        stored = {d["_id"]: d["n"] async for d in runtime.db["people"].find({})}
        assert stored == {"a": 11, "b": 2, "c": 103, "d": 4}  # "d" was sent at the commit

        async def aborted(uow: UnitOfWork) -> None:
            uow.db["people"].write_later(UpdateOne({"_id": "e"}, {"$set": {"n": 5}}, upsert=True))
            await uow.db["others"].insert_one({"_id": "x"})
            raise RuntimeError("given up")

        with pytest.raises(RuntimeError):
            await runtime.transact(aborted)
        assert await runtime.db["people"].find_one({"_id": "e"}) is None


async def test_inserts_of_what_is_absent_keep_what_is_stored_and_their_order(infra: Stack) -> None:
    """`insert_absent` and `insert_later` insert a document only if none with its `_id` is
    stored, as an upsert with `$setOnInsert` alone would: what is stored is left as it is, an
    `_id` given twice is inserted once (the first), the inserted come back in order, and kept
    inserts go out in order with the kept writes around them."""
    runtime = Runtime(isolated_settings(infra, "absent"), service="test")
    async with runtime.lifespan(FastAPI()):
        await runtime.db["facts"].insert_one({"_id": "b", "v": "stored"})

        async def work(uow: UnitOfWork) -> list[Any]:
            facts = uow.db["facts"]
            new = await facts.insert_absent(
                [{"_id": "c", "v": 1}, {"_id": "b", "v": 2}, {"_id": "a", "v": 3}, {"_id": "c", "v": 4}]
            )
            facts.insert_later({"_id": "d", "v": 5})
            facts.write_later(UpdateOne({"_id": "d"}, {"$inc": {"v": 10}}))  # after the insert
            facts.insert_later({"_id": "d", "v": 6})  # stored by then: left alone
            facts.insert_later({"_id": "e", "v": 7})  # sent at the commit
            return [new, await facts.find_one({"_id": "d"})]

        new, kept = await runtime.transact(work)
        assert new == [{"_id": "c", "v": 1}, {"_id": "a", "v": 3}]
        assert kept == {"_id": "d", "v": 15}
        stored = {d["_id"]: d["v"] async for d in runtime.db["facts"].find({})}
        assert stored == {"a": 3, "b": "stored", "c": 1, "d": 15, "e": 7}


async def test_work_before_the_commit_runs_after_the_handlers_and_commits_with_them(infra: Stack) -> None:
    """`before_commit`: what handlers gathered is written after the last of them, in the same
    transaction (with what it emits), and not at all when the unit of work is given up."""
    runtime = Runtime(isolated_settings(infra, "before"), service="test")
    async with runtime.lifespan(FastAPI()):
        order: list[str] = []

        async def work(uow: UnitOfWork) -> None:
            gathered = ["a", "b"]

            async def store() -> None:
                order.append("stored")
                await uow.db["gathered"].insert_many([{"_id": g} for g in gathered])

            uow.before_commit(store)
            gathered.append("c")  # a later handler adds to it
            order.append("handlers done")

        await runtime.transact(work)
        assert order == ["handlers done", "stored"]
        assert {d["_id"] async for d in runtime.db["gathered"].find({})} == {"a", "b", "c"}

        async def given_up(uow: UnitOfWork) -> None:
            async def store() -> None:
                await uow.db["gathered"].insert_one({"_id": "d"})
                raise RuntimeError("the commit is not reached")

            uow.before_commit(store)

        with pytest.raises(RuntimeError):
            await runtime.transact(given_up)
        assert await runtime.db["gathered"].find_one({"_id": "d"}) is None
