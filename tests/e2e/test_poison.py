"""Poison on every topic: three bad messages on each of the platform's topics, and every service
that consumes the topic sets each one aside with its reason, and goes on.

The bad messages: bytes that are no JSON; an envelope of one of the topic's event types whose
data the schema refuses (schema-incompatible: a field missing); an envelope of a type no
service knows. Who consumes what is read from each service's /readyz (the partitions its
consumers hold), so a service that starts consuming a new topic is covered without a change
here. Afterwards every consumer group has committed past them (lag 0 on /metrics): nothing
is stuck behind a bad message, and a new cluster still travels to every service.
"""

import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from c2f_cli.config import SERVICES
from c2f_cli.stack import Stack
from c2f_shared import topics
from c2f_shared.envelope import Envelope
from c2f_shared.events import EVENT_TYPES
from tests.support import as_operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def bad_messages(topic: str, run: str) -> dict[str, tuple[bytes, str]]:
    """Each bad message, with the start of the reason a consumer must give."""
    event_type = next(t for t in EVENT_TYPES.values() if topic == t.TOPIC)

    def envelope(type_name: str, data: dict[str, Any]) -> bytes:
        return (
            Envelope(
                event_id=f"poison-{run}-{type_name}-{uuid.uuid4().hex[:6]}",
                type=type_name,
                schema_version=event_type.VERSION,
                occurred_at="2026-11-25T10:00:00Z",
                correlation_id=f"poison-{run}",
                producer="intruder",
                key=f"poison-{run}",
                data=data,
            )
            .model_dump_json()
            .encode()
        )

    return {
        "not JSON": (b"\x00\xff{not json " + run.encode(), "invalid envelope: body: Invalid JSON"),
        "schema-incompatible": (
            envelope(event_type.TYPE, {"unexpected": run}),
            f"invalid {event_type.TYPE} v{event_type.VERSION}: data.",
        ),
        "unknown type": (envelope("SomethingElse", {}), "unknown event type 'SomethingElse'"),
    }


async def consumed_topics(stack: Stack) -> dict[str, set[str]]:
    """service → the topics its consumers hold partitions of."""
    found: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            ready = (await client.get(f"{stack.config.service_url(service)}/readyz")).json()
            held = " ".join(str(v) for v in ready["checks"]["consumers"].values())
            found[service] = {t for t in topics.ALL if f"{t}[" in held}
    return found


async def lag(stack: Stack, service: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{stack.config.service_url(service)}/metrics")).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "c2f_consumer_lag"
    )


async def test_every_consumer_sets_bad_messages_aside_with_the_reason_and_goes_on(platform: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    consumers = await consumed_topics(platform)
    assert all(consumers.values()), consumers
    assert set().union(*consumers.values()) == set(topics.ALL), "every topic has a consumer"

    sent: dict[tuple[str, int, int], tuple[str, str]] = {}  # (topic, partition, offset) → what, reason
    producer = AIOKafkaProducer(bootstrap_servers=platform.config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic in topics.ALL:
            for what, (payload, reason) in bad_messages(topic, run).items():
                record = await producer.send_and_wait(topic, payload, key=f"poison-{run}".encode())
                sent[(topic, record.partition, record.offset)] = (what, reason)
    finally:
        await producer.stop()

    letters: dict[str, list[dict[str, Any]]] = {}

    async def all_set_aside() -> bool:
        for service in SERVICES:
            async with as_operator(platform, service) as client:
                response = await client.get("/dead-letters", params={"limit": 1000})
            assert response.status_code == 200, response.text
            letters[service] = response.json()
        return all(
            any((d["topic"], d["partition"], d["offset"]) == where for d in letters[service])
            for service, held in consumers.items()
            for where in sent
            if where[0] in held
        )

    await eventually(all_set_aside, within=60)
    checked = 0
    for service, held in consumers.items():
        mine = {(d["topic"], d["partition"], d["offset"]): d for d in letters[service]}
        for where, (what, reason) in sent.items():
            if where[0] not in held:
                continue
            assert mine[where]["reason"].startswith(reason), (service, where, what, mine[where]["reason"])
            checked += 1
    print(
        f"{len(sent)} bad messages on {len(topics.ALL)} topics: {checked} dead letters, each with its reason"
    )

    # Nothing waits behind them: every group commits past the bad messages, and new facts flow.
    async def caught_up() -> bool:
        return all([await lag(platform, s) == 0 for s in SERVICES])

    await eventually(caught_up, within=60)
    async with as_operator(platform, "reporting") as reporting, as_operator(platform) as registration:
        before = (await reporting.get("/reports/partnership")).json()["clusters"]
        created = await registration.post(
            "/clusters",
            json={
                "name": f"After poison {run}",
                "short_name": f"AP{run}",
                "country": "IT",
                "sectors": ["ict"],
            },
        )
        assert created.status_code == 201, created.text

        async def counted() -> bool:
            return bool((await reporting.get("/reports/partnership")).json()["clusters"] == before + 1)

        await eventually(counted, within=30)
