"""The consumer's wiring, on FastStream's in-memory test broker with an in-memory database:
each event type reaches its handler, a key's events are handled in the order sent, an event
comes through once however often it is delivered, other types are acknowledged without work,
and an unreadable message is set aside with its reason while the consumer goes on."""

import asyncio
import uuid
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from c2f_shared import topics
from c2f_shared.envelope import Envelope
from c2f_shared.events import ClusterRegistered, CompanyErased, ParticipantWithdrawn
from c2f_shared.service.consumer import Consumer
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.pipeline import BatchFailed, Gate, Pipeline, Received, RetryPolicy, Where
from c2f_shared.service.settings import ServiceSettings
from c2f_shared.service.unit_of_work import UnitOfWork
from tests.fakes import CountingStore, FakeStore
from tests.support import eventually


def cluster(short_name: str) -> ClusterRegistered:
    return ClusterRegistered(
        cluster_id=str(uuid.uuid4()),
        name=short_name,
        short_name=short_name,
        country="RS",
        sectors=["ict"],
        membership="partner",
    )


def wire(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


async def test_events_reach_their_handlers_once_in_order_and_poison_is_set_aside() -> None:
    handled: list[str] = []
    letters: list[tuple[Where, str]] = []

    async def on_cluster(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        await uow.db["clusters"].insert_one({"_id": event.cluster_id, "short_name": event.short_name})
        handled.append(event.short_name)

    async def on_erased(event: CompanyErased, envelope: Envelope, uow: UnitOfWork) -> None:
        handled.append(f"erased {event.company_id}")

    async def dead_letter(where: Where, reason: str, body: bytes) -> None:
        letters.append((where, reason))

    store = FakeStore()
    broker = KafkaBroker()
    pipeline = Pipeline({ClusterRegistered: on_cluster, CompanyErased: on_erased}, store, Gate())
    assert pipeline.topics == (topics.CLUSTERS, topics.COMPANIES)
    settings = ServiceSettings(mongo_db="test", consumer_group="test")
    Consumer("test", "test", broker, settings, pipeline, RetryPolicy("test", Metrics(), dead_letter))

    async with TestKafkaBroker(broker) as test_broker:
        first = Envelope.wrap(cluster("C0"), producer="test", correlation_id="c")
        for envelope in [
            first,
            *(Envelope.wrap(cluster(f"C{i}"), producer="test", correlation_id="c") for i in range(1, 20)),
        ]:
            await test_broker.publish(wire(envelope), topic=topics.CLUSTERS, key=b"one-key")
        await test_broker.publish(wire(first), topic=topics.CLUSTERS, key=b"one-key")  # delivered again
        await test_broker.publish(b"{not json", topic=topics.CLUSTERS, key=b"one-key")
        withdrawn = ParticipantWithdrawn(participant_id="p", event_id="e")
        await test_broker.publish(
            wire(Envelope.wrap(withdrawn, producer="test", correlation_id="c")),
            topic=topics.CLUSTERS,
            key=b"k",
        )
        erased = CompanyErased(company_id="acme", cluster_id="k1")
        await test_broker.publish(
            wire(Envelope.wrap(erased, producer="test", correlation_id="c")),
            topic=topics.COMPANIES,
            key=b"acme",
        )

        async def settled() -> bool:
            await asyncio.sleep(0)
            return len(handled) == 21 and len(letters) == 1

        await eventually(settled)
    assert handled[:20] == [f"C{i}" for i in range(20)] and handled[20] == "erased acme"
    assert store["clusters"].count_documents({}) == 20  # the repeated C0 was recognised
    [(where, reason)] = letters
    assert where.topic == topics.CLUSTERS and reason.startswith("invalid envelope")


async def test_types_without_a_handler_are_acknowledged_unread_by_their_header() -> None:
    """A record whose `event-type` header names a known type this consumer has no handler for
    is acknowledged without parsing its body (a service's own events come back on a topic it
    reads for other types). A record naming a type it handles, or none, is read: unreadable, it
    is set aside."""
    handled: list[str] = []
    letters: list[str] = []
    parsed: list[bytes] = []

    async def on_cluster(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        handled.append(event.short_name)

    async def dead_letter(where: Where, reason: str, body: bytes) -> None:
        letters.append(body.decode())

    class Noting(Pipeline):
        @staticmethod
        def parse(body: bytes) -> tuple[Envelope, Any]:
            parsed.append(body)
            return Pipeline.parse(body)

    metrics = Metrics()
    pipeline = Noting({ClusterRegistered: on_cluster}, FakeStore(), Gate())
    broker = KafkaBroker()
    Consumer(
        "test",
        "test",
        broker,
        ServiceSettings(mongo_db="t", consumer_group="t"),
        pipeline,
        RetryPolicy("test", metrics, dead_letter),
    )
    withdrawn = wire(
        Envelope.wrap(
            ParticipantWithdrawn(participant_id="p", event_id="e"), producer="t", correlation_id="c"
        )
    )
    async with TestKafkaBroker(broker) as test_broker:
        for body, event_type in [
            (withdrawn, "ParticipantWithdrawn"),
            (b"not read", "ParticipantWithdrawn"),
            (wire(Envelope.wrap(cluster("A"), producer="t", correlation_id="c")), "ClusterRegistered"),
            (b"bad, no header", None),
            (b"bad, handled type", "ClusterRegistered"),
            (b"bad, unknown type", "NoSuchEvent"),
        ]:
            headers = {"event-type": event_type} if event_type else {}
            await test_broker.publish(body, topic=topics.CLUSTERS, key=b"k", headers=headers)

        async def settled() -> bool:
            await asyncio.sleep(0)
            return len(handled) == 1 and len(letters) == 3

        await eventually(settled)
    assert handled == ["A"]
    assert letters == ["bad, no header", "bad, handled type", "bad, unknown type"]
    assert withdrawn not in parsed and b"not read" not in parsed
    ignored = metrics.messages.labels("test", topics.CLUSTERS, "ignored")._value.get()
    assert ignored == 2


async def test_a_failing_handler_is_retried_then_set_aside_without_stopping_the_partition() -> None:
    attempts: dict[str, int] = {}
    letters: list[str] = []

    async def flaky(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        attempts[event.short_name] = attempts.get(event.short_name, 0) + 1
        if event.short_name == "BROKEN":
            raise RuntimeError("a bug")
        if event.short_name == "ONCE" and attempts["ONCE"] == 1:
            raise RuntimeError("a hiccup")

    async def dead_letter(where: Where, reason: str, body: bytes) -> None:
        letters.append(reason)

    import c2f_shared.service.pipeline as pipeline_module

    store = FakeStore()
    broker = KafkaBroker()
    pipeline = Pipeline({ClusterRegistered: flaky}, store, Gate())
    settings = ServiceSettings(mongo_db="test", consumer_group="test")
    Consumer("test", "test", broker, settings, pipeline, RetryPolicy("test", Metrics(), dead_letter))
    pause, pipeline_module.RETRY_PAUSE_S = pipeline_module.RETRY_PAUSE_S, 0.001
    try:
        async with TestKafkaBroker(broker) as test_broker:
            for name in ("ONCE", "BROKEN", "AFTER"):
                envelope = Envelope.wrap(cluster(name), producer="test", correlation_id="c")
                await test_broker.publish(wire(envelope), topic=topics.CLUSTERS, key=b"k")

            async def settled() -> Any:
                await asyncio.sleep(0)
                return attempts.get("AFTER") == 1

            await eventually(settled)
    finally:
        pipeline_module.RETRY_PAUSE_S = pause
    assert attempts == {"ONCE": 2, "BROKEN": pipeline_module.MAX_ATTEMPTS, "AFTER": 1}
    assert letters == [f"failed {pipeline_module.MAX_ATTEMPTS} times: RuntimeError: a bug"]


async def test_records_waiting_together_are_handled_in_one_transaction_each_once() -> None:
    seen: list[tuple[str, str]] = []

    async def note(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        seen.append((event.short_name, uow.correlation_id))

    store = CountingStore()
    pipeline = Pipeline({ClusterRegistered: note}, store, Gate())
    envelopes = [
        Envelope.wrap(cluster(name), producer="test", correlation_id=f"c-{name}") for name in ("A", "B", "C")
    ]
    store["processed_events"].insert_one({"_id": envelopes[1].event_id})  # B came through before
    other = Envelope.wrap(
        ParticipantWithdrawn(participant_id="p", event_id="e"), producer="t", correlation_id="x"
    )
    bodies = [wire(e) for e in (*envelopes, envelopes[0], other)]

    outcomes = await pipeline.process_batch(bodies)

    assert outcomes == ["processed", "duplicate", "processed", "duplicate", "ignored"]
    # The first stopped at the inbox (B is in it); the second left B out.
    assert store.transactions == 2
    assert seen == [("A", "c-A"), ("C", "c-C")], "each handled once, under its own correlation id"
    assert {d["_id"] for d in store["processed_events"].find()} == {e.event_id for e in envelopes}

    fresh = [Envelope.wrap(cluster(name), producer="test", correlation_id=name) for name in ("D", "E")]
    assert await pipeline.process_batch([wire(e) for e in fresh]) == ["processed", "processed"]
    assert store.transactions == 3, "a batch nobody processed before takes one transaction"


async def test_a_batch_that_fails_stores_nothing_and_the_one_at_fault_keeps_its_count() -> None:
    handled: list[str] = []
    letters: list[str] = []

    async def picky(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        await uow.db["clusters"].insert_one({"_id": event.short_name})
        handled.append(event.short_name)
        if event.short_name == "BROKEN":
            raise RuntimeError("a bug")

    async def dead_letter(where: Where, reason: str, body: bytes) -> None:
        letters.append(reason)

    import c2f_shared.service.pipeline as pipeline_module

    store = FakeStore()
    pipeline = Pipeline({ClusterRegistered: picky}, store, Gate())
    names = ("A", "B", "BROKEN", "C", "D")
    bodies = [wire(Envelope.wrap(cluster(name), producer="test", correlation_id="c")) for name in names]
    with pytest.raises(BatchFailed) as failed:
        await pipeline.process_batch(bodies)
    assert failed.value.at == 2, "the broken one is named"
    assert list(store["clusters"].find()) == [] and list(store["processed_events"].find()) == []

    handled.clear()
    pause, pipeline_module.RETRY_PAUSE_S = pipeline_module.RETRY_PAUSE_S, 0.001
    try:
        policy = RetryPolicy("test", Metrics(), dead_letter)
        await policy.settle_all([Received(Where("t", 0, i), body) for i, body in enumerate(bodies)], pipeline)
    finally:
        pipeline_module.RETRY_PAUSE_S = pause
    # The batch ran A, B and BROKEN and was rolled back; A and B went again together, BROKEN
    # had its remaining attempts, C and D went together.
    max_attempts = pipeline_module.MAX_ATTEMPTS
    assert handled == ["A", "B", "BROKEN", "A", "B", *["BROKEN"] * (max_attempts - 1), "C", "D"]
    assert {d["_id"] for d in store["clusters"].find()} == {"A", "B", "C", "D"}
    assert letters == [f"failed {max_attempts} times: RuntimeError: a bug"]


class OverlapStore(FakeStore):
    """The in-memory store, noting the most transactions open at once."""

    def __init__(self) -> None:
        super().__init__()
        self.open = self.most = 0

    async def transact(self, work: Any, correlation_id: str | None = None) -> Any:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await asyncio.sleep(0.01)  # the transaction is open: others ask meanwhile
            return await super().transact(work, correlation_id)
        finally:
            self.open -= 1


@pytest.mark.parametrize("one_at_a_time", [True, False])
async def test_lanes_that_take_turns_wait_before_their_transaction_begins(one_at_a_time: bool) -> None:
    """With `one_at_a_time`, the lanes' units of work never overlap: each waits for its turn
    before its transaction begins, not inside an open one (which the embedded database reaps
    after 60 s)."""

    async def note(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        await asyncio.sleep(0.01)

    store = OverlapStore()
    pipeline = Pipeline({ClusterRegistered: note}, store, Gate(), one_at_a_time=one_at_a_time)
    lanes = [
        [wire(Envelope.wrap(cluster(f"{lane}{i}"), producer="t", correlation_id="x")) for i in range(2)]
        for lane in "ABCD"
    ]
    assert all(await asyncio.gather(*(pipeline.process_batch(bodies) for bodies in lanes)))
    assert store.most == (1 if one_at_a_time else 4)
    assert store["processed_events"].count_documents({}) == 8
