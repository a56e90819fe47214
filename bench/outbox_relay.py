"""Benchmark of the outbox relay: records per second from a backlog to the broker, the relay of
a given revision (one record per round trip, before issue 16) beside today's (leased batches).

The script starts a broker, a database and an SMTP sink on free ports in a temporary directory,
as `c2f up` runs them, stores --records events in an outbox (in transactions of 50, as requests
store them: ~0.5 KiB each, over 100 keys) and times the relay until nothing is pending. Each run
has a database and a topic of its own:

- before: `Outbox` as it was at --before (read with `git show`), alone;
- now, as on Kafka: today's `Outbox`, without the broker-loss check;
- now, embedded: today's `Outbox` with the broker-loss check (as `c2f up` runs it);
- now, 2 replicas: two relays over one outbox, each with its own producer (the lease decides
  who sends). Every run checks that each event reached the topic once.

Each is measured twice: with the event loop to itself, and busy, as a service's loop is under
load (the relay shares it with the HTTP handlers): --busy tasks each hold the loop 1 ms between
awaits, so every await of the relay waits its turn behind them.

Usage: .venv/bin/python bench/outbox_relay.py [--records 2000] [--busy 20] [--before ee2a569]
"""

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from c2f_cli.config import StackConfig
from c2f_shared.envelope import Envelope
from c2f_shared.events import ClusterRegistered
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.replay import OffsetProbe
from c2f_shared.service.settings import ServiceSettings
from measuring import machine, on_infrastructure, stop_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
Doc = dict[str, Any]


def outbox_at(revision: str) -> ModuleType:
    """The outbox module as it was at `revision` of this repository."""
    source = subprocess.run(
        ["git", "show", f"{revision}:shared/c2f_shared/service/outbox.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"outbox_{revision}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"outbox.py@{revision}", "exec"), module.__dict__)  # our own history
    return module


def envelopes(n: int) -> list[Envelope]:
    keys = [str(uuid.uuid4()) for _ in range(100)]
    return [
        Envelope.wrap(
            ClusterRegistered(
                cluster_id=keys[i % len(keys)],
                name=f"Cluster {i} " + "x" * 200,
                short_name=f"C{i}",
                country="RS",
                sectors=["ict", "mobility"],
                membership="founding",
            ),
            producer="bench",
            correlation_id=f"bench-{i}",
        )
        for i in range(n)
    ]


async def fill(db: AsyncDatabase[Doc], outbox: Any, topic: str, sent: list[Envelope]) -> None:
    width = 3  # what `add` takes: (envelope, topic, trace) since traces, (envelope, topic) before
    for start in range(0, len(sent), 50):
        while True:
            try:
                async with db.client.start_session() as session, await session.start_transaction():
                    await outbox.add([(e, topic, {})[:width] for e in sent[start : start + 50]], session)
                break
            except ValueError:  # an outbox from before traces: it unpacks two (nothing written)
                if width == 2:
                    raise
                width = 2


async def on_topic(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    ids: list[str] = []
    try:
        while len(ids) < expected:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            ids += [Envelope.model_validate_json(r.value).event_id for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return ids


async def relay_until_empty(outbox: Any) -> None:
    while await outbox.publish_pending():
        pass


async def hog() -> None:
    """A request handler's share of the loop: 1 ms of work, then the next one's turn."""
    while True:
        time.sleep(0.001)  # noqa: ASYNC251 - holding the loop is what it is for
        await asyncio.sleep(0)


async def run(
    config: StackConfig,
    records: int,
    make: Callable[[AsyncDatabase[Doc], list[KafkaBroker]], Awaitable[list[Any]]],
    relays: int = 1,
    busy: int = 0,
) -> tuple[float, bool]:
    """Records/s of the relays made by `make` draining a backlog of `records`; and whether each
    event reached the topic exactly once."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(config.scratch_mongo_uri, tz_aware=True)
    db = client[f"bench_outbox_{uuid.uuid4().hex[:8]}"]
    topic = f"bench.outbox.{uuid.uuid4().hex[:8]}"
    brokers = [KafkaBroker(config.kafka_bootstrap, acks="all") for _ in range(relays)]
    for broker in brokers:
        await broker.start()
    try:
        outboxes = await make(db, brokers)
        await outboxes[0].ensure_indexes()
        sent = envelopes(records)
        await fill(db, outboxes[0], topic, sent)
        hogs = [asyncio.create_task(hog()) for _ in range(busy)]
        start = time.perf_counter()
        while await outboxes[0].pending():
            await asyncio.gather(*(relay_until_empty(o) for o in outboxes))
        elapsed = time.perf_counter() - start
        for task in hogs:
            task.cancel()
        await asyncio.gather(*hogs, return_exceptions=True)
        ids = await on_topic(config.kafka_bootstrap, topic, records)
        once = sorted(ids) == sorted(e.event_id for e in sent)
    finally:
        for broker in brokers:
            await broker.stop()
        await client.drop_database(db.name)
        await client.close()
    return records / elapsed, once


async def bench(
    config: StackConfig, records: int, before: str, busy: int
) -> list[tuple[str, float, float, bool]]:
    old = outbox_at(before)
    settings = ServiceSettings(
        kafka_bootstrap=config.kafka_bootstrap,
        mongo_uri=config.scratch_mongo_uri,
        mongo_db="x",
        consumer_group="x",
    )
    probes: list[OffsetProbe] = []

    async def before_relay(db: AsyncDatabase[Doc], brokers: list[KafkaBroker]) -> list[Any]:
        return [old.Outbox(db, brokers[0])]

    async def plain(db: AsyncDatabase[Doc], brokers: list[KafkaBroker]) -> list[Any]:
        return [Outbox(db, b) for b in brokers]

    async def embedded(db: AsyncDatabase[Doc], brokers: list[KafkaBroker]) -> list[Any]:
        probes.extend(OffsetProbe(settings) for _ in brokers)
        return [
            Outbox(db, b, watch=p.end_offsets) for b, p in zip(brokers, probes[-len(brokers) :], strict=True)
        ]

    results = []
    for label, make, relays in (
        (f"before ({before}): one record per round trip", before_relay, 1),
        ("now, as on Kafka: leased batches", plain, 1),
        ("now, embedded: leased batches + loss check", embedded, 1),
        ("now, embedded, 2 replicas over one outbox", embedded, 2),
    ):
        idle, once_idle = await run(config, records, make, relays)
        loaded, once_loaded = await run(config, records, make, relays, busy)
        once = once_idle and once_loaded
        verdict = "each once" if once else "MISSING OR DOUBLED"
        print(f"  {label:<48} {idle:8.0f} / {loaded:6.0f} records/s  {verdict}")
        results.append((label, idle, loaded, once))
    for probe in probes:
        await probe.stop()
    return results


def main() -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2000, help="events in the backlog")
    parser.add_argument("--busy", type=int, default=20, help="tasks keeping the event loop busy")
    parser.add_argument("--before", default="ee2a569", help="the revision whose relay to compare with")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    results = on_infrastructure(
        "c2f-outbox-", lambda config: asyncio.run(bench(config, args.records, args.before, args.busy))
    )
    _, base_idle, base_loaded, _ = results[0]
    print(f"\nrecords/s, {args.records} pending; loop busy: {args.busy} tasks holding it 1 ms at a time")
    print(f"{'relay':<50} {'loop idle':>10} {'× before':>9} {'loop busy':>10} {'× before':>9}")
    for label, idle, loaded, once in results:
        print(
            f"{label:<50} {idle:10.0f} {idle / base_idle:9.1f} {loaded:10.0f} {loaded / base_loaded:9.1f}"
            + ("" if once else "  (missing or doubled!)")
        )
    return 0 if all(once for *_, once in results) else 1


if __name__ == "__main__":
    sys.exit(main())
