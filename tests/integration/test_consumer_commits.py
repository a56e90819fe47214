"""A consumer commits what its lanes finish together, at most every COMMIT_EVERY_S, not one
commit per record: records arriving one at a time (as a service's own events come back to it)
cost the broker a commit each otherwise. Every record is still handled once, and the committed
offset reaches the end of the partition."""

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import TopicPartition

from c2f_cli.stack import Stack
from c2f_shared.envelope import Envelope
from c2f_shared.service import consumer as consumer_module
from tests.integration.test_runtime import cluster, producer, recording, running
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

RECORDS = 40


async def test_records_finished_one_at_a_time_are_committed_together(infra: Stack) -> None:
    topic = f"test.commits.{uuid.uuid4().hex}"
    seen: list[str] = []
    async with running(infra, recording(seen), topic) as runtime:
        kafka: Any = runtime.consumers[0].kafka
        commits: list[dict[TopicPartition, int]] = []
        commit = kafka.commit

        async def counted(offsets: dict[TopicPartition, int]) -> None:
            commits.append(dict(offsets))
            await commit(offsets)

        kafka.commit = counted
        async with producer(infra) as p:
            for n in range(RECORDS):  # one at a time, as requests come
                envelope = Envelope.wrap(cluster(f"C{n}"), producer="test", correlation_id="c")
                await p.send_and_wait(topic, envelope.model_dump_json().encode(), key=b"k")
                await asyncio.sleep(0.01)
        tp = TopicPartition(topic, 0)

        async def caught_up() -> bool:
            return bool(await commit_offset(kafka, tp) == RECORDS)

        await eventually(caught_up, within=10)
    assert seen == [f"C{n}" for n in range(RECORDS)]
    # One commit per record (or per fetch) would be about 40; paced, the records of each
    # COMMIT_EVERY_S share one.
    assert len(commits) <= RECORDS / 4, (len(commits), consumer_module.COMMIT_EVERY_S)


async def commit_offset(kafka: Any, tp: TopicPartition) -> int | None:
    committed: int | None = await asyncio.wait_for(kafka.committed(tp), 5)
    return committed
