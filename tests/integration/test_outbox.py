"""The outbox relay on the real broker and database: replicas sharing one outbox publish each
row once (the relay lease), what a relay that died with the lease left is published by another
once the lease runs out, a batch keeps each
key's order, a batch is not mistaken for a broker loss, and a service started against a new,
empty broker publishes everything it keeps again."""

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from c2f_cli.processes import free_port
from c2f_cli.stack import Stack, start_broker
from c2f_shared.envelope import Envelope
from c2f_shared.events import ClusterRegistered
from c2f_shared.service.outbox import LEASES, REACHED, Outbox
from c2f_shared.service.replay import OffsetProbe
from c2f_shared.service.settings import ServiceSettings
from c2f_shared.service.unit_of_work import Emitted
from tests.support import Statements, eventually, isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

Doc = dict[str, Any]


@asynccontextmanager
async def database(infra: Stack) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.config.scratch_mongo_uri, tz_aware=True)
    try:
        yield client[f"outbox_{uuid.uuid4().hex[:10]}"]
    finally:
        await client.close()


@asynccontextmanager
async def broker(bootstrap: str) -> AsyncIterator[KafkaBroker]:
    kafka = KafkaBroker(bootstrap, acks="all", request_timeout_ms=5000, metadata_max_age_ms=5000)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


@asynccontextmanager
async def watching(db: AsyncDatabase[Doc], settings: ServiceSettings) -> AsyncIterator[Outbox]:
    """An outbox on `db` that publishes to the broker `settings` name and watches it for a loss,
    as on the embedded stack."""
    async with AsyncExitStack() as running:
        probe = OffsetProbe(settings)
        running.push_async_callback(probe.stop)
        kafka = await running.enter_async_context(broker(settings.kafka_bootstrap))
        outbox = Outbox(db, kafka, watch=probe.end_offsets)
        await outbox.ensure_indexes()
        yield outbox


def events(keys: int, per_key: int) -> list[Envelope]:
    """`per_key` events for each of `keys` clusters, interleaved, each naming its place."""
    ids = [str(uuid.uuid4()) for _ in range(keys)]
    return [
        Envelope.wrap(
            ClusterRegistered(
                cluster_id=ids[k],
                name=f"{k}-{n}",
                short_name=f"C{k}",
                country="RS",
                sectors=["ict"],
                membership="founding",
            ),
            producer="test",
            correlation_id="c",
        )
        for n in range(per_key)
        for k in range(keys)
    ]


async def store(db: AsyncDatabase[Doc], outbox: Outbox, emitted: list[Envelope], topic: str) -> None:
    """Add the events to the outbox as units of work do: in a transaction, in order."""
    async with db.client.start_session() as session, await session.start_transaction():
        await outbox.add([Emitted(e, topic, {}) for e in emitted], session)


async def read(bootstrap: str, topic: str, expected: int) -> list[Envelope]:
    """Every record on `topic`, per partition in offset order, once `expected` have come."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    received: list[tuple[int, int, Envelope]] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                received += [
                    (r.partition, r.offset, Envelope.model_validate_json(r.value))
                    for rs in batch.values()
                    for r in rs
                ]
        # Whatever else arrives (a second copy) would have come with them or right after.
        batch = await consumer.getmany(timeout_ms=1000)
        received += [
            (r.partition, r.offset, Envelope.model_validate_json(r.value))
            for rs in batch.values()
            for r in rs
        ]
    finally:
        await consumer.stop()
    return [e for _, _, e in sorted(received, key=lambda r: (r[0], r[1]))]


def in_order_per_key(received: list[Envelope], sent: list[Envelope]) -> bool:
    """Each key's events arrived in the order they were stored."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for envelope in received:
        by_key[envelope.key].append(envelope.event_id)
    stored: dict[str, list[str]] = defaultdict(list)
    for envelope in sent:
        stored[envelope.key].append(envelope.event_id)
    return dict(by_key) == dict(stored)


async def test_two_relays_over_one_outbox_publish_each_row_once(infra: Stack) -> None:
    topic = f"test.outbox.leases.{uuid.uuid4().hex}"
    sent = events(keys=12, per_key=25)
    bootstrap = infra.config.kafka_bootstrap
    async with database(infra) as db, broker(bootstrap) as kafka_a, broker(bootstrap) as kafka_b:
        a, b = Outbox(db, kafka_a), Outbox(db, kafka_b)
        await a.ensure_indexes()
        for start in range(0, len(sent), 50):  # as requests come in: some at a time
            await store(db, a, sent[start : start + 50], topic)
        while await a.pending():  # both relays at once, round after round
            await asyncio.gather(a.publish_pending(batch=40), b.publish_pending(batch=40))
        assert a.published + b.published == len(sent)
        received = await read(bootstrap, topic, len(sent))
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)  # each once
    assert in_order_per_key(received, sent)


async def test_what_a_relay_that_died_with_the_lease_left_is_published_by_another(infra: Stack) -> None:
    topic = f"test.outbox.expired.{uuid.uuid4().hex}"
    sent = events(keys=3, per_key=4)
    bootstrap = infra.config.kafka_bootstrap
    async with database(infra) as db, broker(bootstrap) as kafka:
        died, survivor = Outbox(db, kafka), Outbox(db, kafka)
        await died.ensure_indexes()
        await store(db, died, sent, topic)
        assert await died._take_lease()  # ... and then its process was killed
        assert await survivor.publish_pending() == 0  # not while the lease lasts
        assert await survivor.pending() == len(sent)
        # ... until it runs out.
        await db[LEASES].update_many({}, {"$set": {"lease_until": datetime.now(UTC) - timedelta(seconds=1)}})
        assert await survivor.publish_pending() == len(sent)
        assert await survivor.pending() == 0
        lease = await db[LEASES].find_one()
        assert lease is not None and lease["owner"] == survivor._owner  # the survivor's now
        received = await read(bootstrap, topic, len(sent))
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)
    assert in_order_per_key(received, sent)


async def test_a_batch_keeps_each_keys_order_and_is_not_taken_for_a_loss(infra: Stack) -> None:
    topic = f"test.outbox.batch.{uuid.uuid4().hex}"
    sent = events(keys=7, per_key=60)
    bootstrap = infra.config.kafka_bootstrap
    probe = OffsetProbe(isolated_settings(infra, "probe"))
    async with database(infra) as db, broker(bootstrap) as kafka:
        outbox = Outbox(db, kafka, watch=probe.end_offsets)
        await outbox.ensure_indexes()
        await store(db, outbox, sent, topic)
        assert await outbox.publish_pending() == len(sent)  # one round, one batch
        received = await read(bootstrap, topic, len(sent))
        assert len(received) == len(sent)
        assert in_order_per_key(received, sent)

        reached = outbox.reached()
        assert sum(reached.values()) == len(sent)
        assert await outbox.check_for_loss() is False
        assert outbox.losses == 0 and await outbox.pending() == 0
        stored = {d["_id"]: d["offset"] async for d in db[REACHED].find()}
        assert stored == {f"{tp.topic}:{tp.partition}": end for tp, end in reached.items()}
        if infra.config.external_kafka is None:
            # Why the exact ends come from a fetch: Tansu lists a partition's end short after a
            # multi-record batch, which a check on listed offsets would take for a loss.
            listing = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await listing.start()
            try:
                listed = await listing.end_offsets(list(reached))
            finally:
                await listing.stop()
            assert any(listed[tp] < end for tp, end in reached.items())
    await probe.stop()


async def test_a_service_started_against_a_new_broker_publishes_what_it_keeps_again(
    infra: Stack, tmp_path: Path
) -> None:
    """The embedded stack stopped and started: the database kept everything, the broker nothing."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = f"test.outbox.restart.{uuid.uuid4().hex}"
    first, later = events(keys=5, per_key=6), events(keys=2, per_key=3)
    settings = isolated_settings(infra, "restart").model_copy(update={"kafka_bootstrap": bootstrap})
    old = start_broker("kafka-old", "127.0.0.1", port, tmp_path)
    try:
        async with database(infra) as db:
            async with watching(db, settings) as before:
                await before.reconcile()  # nothing known yet: nothing to compare
                await store(db, before, first, topic)
                assert await before.publish_pending() == len(first)
                assert before.losses == 0
                await before.give_up_lease()  # stopped (as the relay does when cancelled)
            old.stop()
            new = start_broker("kafka-new", "127.0.0.1", port, tmp_path)
            try:
                async with watching(db, settings) as after:
                    await after.reconcile()
                    assert after.losses == 1
                    assert await after.pending() == len(first)
                    await store(db, after, later, topic)  # a write after the start
                    while await after.publish_pending():
                        pass
                    received = await read(bootstrap, topic, len(first) + len(later))
                # A second start finds the broker holding everything: nothing again.
                async with watching(db, settings) as again:
                    await again.reconcile()
                    assert again.losses == 0 and await again.pending() == 0
            finally:
                new.stop()
    finally:
        old.stop()
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in first + later)
    assert in_order_per_key(received, first + later)


async def test_after_a_loss_a_relay_stopped_at_once_has_noted_how_far_it_got_again(
    infra: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker lost everything; the relay published it all again and was stopped right after
    (Ctrl-C two seconds after a broker restart). The next start, against yet another empty
    broker, must see that it holds less, and publish everything again. (Found by the kill
    matrix in test_launcher: the next start published nothing again, and the consumers of the
    new broker never saw the sign-ups made before.)"""
    # How far partitions got is otherwise written at most every SAVE_REACHED_EVERY_S: here
    # never, so only what must be written at once is.
    monkeypatch.setattr("c2f_shared.service.outbox.SAVE_REACHED_EVERY_S", 3600.0)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = f"test.outbox.stopped.{uuid.uuid4().hex}"
    emitted = events(keys=3, per_key=2)
    settings = isolated_settings(infra, "stopped").model_copy(update={"kafka_bootstrap": bootstrap})
    brokers = [start_broker("kafka-first", "127.0.0.1", port, tmp_path)]
    try:
        async with database(infra) as db:
            async with watching(db, settings) as outbox:
                relay = asyncio.create_task(outbox.relay_forever(idle_poll=60))

                async def published(count: int) -> bool:
                    return await outbox.pending() == 0 and outbox.published == count

                await store(db, outbox, emitted, topic)
                outbox.wake()
                await eventually(lambda: published(len(emitted)), within=30)
                await outbox.republish_after_loss(outbox.reached())  # as when a loss is noticed
                await eventually(lambda: published(2 * len(emitted)), within=30)
                relay.cancel()  # stopped while it waits for more
                await asyncio.gather(relay, return_exceptions=True)
            brokers.pop().stop()
            brokers.append(start_broker("kafka-second", "127.0.0.1", port, tmp_path))
            async with watching(db, settings) as after:
                await after.reconcile()
                assert after.losses == 1
                assert await after.pending() == len(emitted)
    finally:
        for each in brokers:
            each.stop()


async def test_facts_stored_at_once_outside_a_transaction_are_stored_once(infra: Stack) -> None:
    """`add_now` (notifications' sent marks): storing again, after a crash, facts some of which
    are stored already keeps the stored ones as they were and adds the others; a row already
    published stays published."""
    first, second = events(2, 1), events(1, 1)
    async with database(infra) as db, broker(infra.config.kafka_bootstrap) as kafka:
        outbox = Outbox(db, kafka)
        await outbox.ensure_indexes()
        await outbox.add_now([Emitted(e, "t", {}) for e in first])
        await db["outbox"].update_one({"_id": first[0].event_id}, {"$set": {"published": True}})
        await outbox.add_now([Emitted(e, "t", {}) for e in [*first, *second]])
        rows = {r["_id"]: r async for r in db["outbox"].find()}
    assert sorted(rows) == sorted(e.event_id for e in [*first, *second])
    assert [rows[e.event_id]["published"] for e in [*first, *second]] == [True, False, False]


async def test_events_committed_one_at_a_time_while_busy_are_published_in_a_few_rounds(infra: Stack) -> None:
    """Under a stream of commits (a registration every few ms) the relay gathers what commits
    during BUSY_GATHER_S after a round into the next one, instead of a round (a read, a send and
    a mark) per event; every event still goes out once, in order."""
    topic = f"test.outbox.gather.{uuid.uuid4().hex}"
    settings = isolated_settings(infra, "gather")
    sent = events(keys=1, per_key=30)
    async with database(infra) as db, watching(db, settings) as outbox:
        rounds: list[int] = []
        publish = outbox.publish_pending

        async def counted(batch: int = 2000) -> int:
            published = await publish(batch)
            if published:
                rounds.append(published)
            return published

        outbox.publish_pending = counted  # type: ignore[method-assign]
        relay = asyncio.create_task(outbox.relay_forever(idle_poll=60))
        try:
            for envelope in sent:  # one unit of work after another, each waking the relay
                await store(db, outbox, [envelope], topic)
                outbox.wake()
                await asyncio.sleep(0.01)
            received = await read(settings.kafka_bootstrap, topic, len(sent))
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
    assert [e.event_id for e in received] == [e.event_id for e in sent]
    assert sum(rounds) == len(sent)
    assert len(rounds) <= len(sent) / 3, rounds  # a round per event without the gathering


async def test_events_with_fresh_ids_are_stored_in_one_statement_and_derived_ones_once(infra: Stack) -> None:
    """An event whose id was drawn for it (a registration's) cannot be stored yet: the outbox
    inserts it without first reading whether it is there. One whose id is derived from a fact
    (given to `emit`) is stored once however often the fact is derived again, also beside fresh
    ones. All keep the order they were emitted in."""
    statements = Statements()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        infra.config.scratch_mongo_uri, tz_aware=True, event_listeners=[statements]
    )
    db = client[f"outbox_{uuid.uuid4().hex[:10]}"]
    fresh, later = (
        [Emitted.of(e.open(), producer="t", correlation_id="c") for e in events(2, 1)] for _ in "ab"
    )
    derived = [
        Emitted.of(e.open(), producer="t", correlation_id="c", event_id=e.event_id) for e in events(2, 1)
    ]

    async def add(emitted: list[Emitted]) -> list[tuple[str, Any]]:
        statements.sent.clear()
        async with client.start_session() as session, await session.start_transaction():
            await outbox.add(emitted, session)
        return [s for s in statements.sent if s[1] == "outbox"]

    try:
        async with broker(infra.config.kafka_bootstrap) as kafka:
            outbox = Outbox(db, kafka)
            await outbox.ensure_indexes()
            assert await add(fresh) == [("insert", "outbox")]
            assert await add(derived) == [("find", "outbox"), ("insert", "outbox")]
            assert await add(derived) == [("find", "outbox")]
            await add([later[0], derived[1], later[1]])
            rows = await db["outbox"].find().sort("seq", 1).to_list(None)
    finally:
        await client.close()
    assert [r["_id"] for r in rows] == [e.envelope.event_id for e in [*fresh, *derived, *later]]
