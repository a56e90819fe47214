"""Nothing lost, nothing doubled: a broker that stops answering under writes, and comes back.

The broker process is frozen (SIGSTOP) for longer than the clients' request and
session timeouts, so producers and consumers see it as down, then resumed. (The
embedded broker keeps everything in memory, so killing and restarting it would
test a different broker with no topics; a real Kafka keeps them across restarts.)
"""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI

from c2f_cli.processes import free_port
from c2f_cli.stack import Stack, start_broker
from c2f_shared.envelope import Envelope
from c2f_shared.events import ClusterRegistered, Event
from c2f_shared.service import Runtime, ServiceSettings, UnitOfWork
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


@asynccontextmanager
async def runtime(bootstrap: str, mongo_uri: str, name: str) -> AsyncIterator[Runtime]:
    settings = ServiceSettings(
        kafka_bootstrap=bootstrap,
        mongo_uri=mongo_uri,
        mongo_db=f"outage_{name}_{uuid.uuid4().hex[:8]}",
        consumer_group=f"outage-{name}-{uuid.uuid4().hex[:8]}",
    )
    yield Runtime(settings, service=name)


async def test_a_broker_outage_under_writes_loses_nothing_and_doubles_nothing(infra: Stack, tmp_path) -> None:
    port = free_port()
    broker = start_broker(f"outage-kafka-{uuid.uuid4().hex[:6]}", "127.0.0.1", port, tmp_path)
    bootstrap = f"127.0.0.1:{port}"
    handled: list[str] = []

    async def record(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(event, ClusterRegistered)
        await uow.db["seen"].insert_one({"_id": event.cluster_id})
        handled.append(event.cluster_id)

    async def write(producer: Runtime, n: int) -> list[str]:
        ids = []
        for i in range(n):
            event = ClusterRegistered(
                cluster_id=str(uuid.uuid4()),
                name=f"C{i}",
                short_name=f"C{i}",
                country="IT",
                sectors=["ict"],
                membership="partner",
            )
            async with producer.unit_of_work() as uow:
                await uow.db["clusters"].insert_one({"_id": event.cluster_id})
                uow.emit(event)
            ids.append(event.cluster_id)
        return ids

    try:
        async with (
            runtime(bootstrap, infra.config.scratch_mongo_uri, "producer") as producer,
            runtime(bootstrap, infra.config.scratch_mongo_uri, "consumer") as consumer,
        ):
            consumer.consume({ClusterRegistered: record}, name="clusters")
            async with producer.lifespan(FastAPI()), consumer.lifespan(FastAPI()):
                before = await write(producer, 20)
                await eventually(lambda: set(before) <= set(handled))

                broker.process.send_signal(signal.SIGSTOP)
                try:
                    during = await write(producer, 20)  # stored; their events wait in the outbox
                    await asyncio.sleep(8)  # longer than the request (5 s) and session (3 s) timeouts
                    assert await producer.outbox.pending() >= 1
                    assert not set(during) & set(handled)
                    # Still taking writes, so still ready; the broker is reported as degraded.
                    report = await producer.readiness()
                    assert report["ready"] and report["degraded"] == ["broker"]
                    assert report["checks"]["broker"].startswith("unreachable")
                finally:
                    broker.process.send_signal(signal.SIGCONT)
                await eventually(lambda: set(before + during) <= set(handled), within=90)
                await eventually(lambda: _outbox_empty(producer), within=30)
                assert (await producer.readiness())["degraded"] == []

                assert sorted(handled) == sorted(before + during)  # each handled exactly once
                assert await consumer.db["seen"].count_documents({}) == 40
    finally:
        broker.stop()


async def _outbox_empty(runtime: Runtime) -> bool:
    return await runtime.outbox.pending() == 0
