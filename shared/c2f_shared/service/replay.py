"""Reading the topics outside the consumer group: rebuilding a read model from the start of the
topics (`replay`), and the end offsets the outbox's loss watcher compares with (`OffsetProbe`).

End offsets are read from a fetch (`exact_end_offsets`): the embedded broker (Tansu) lists a
partition's end short after a multi-record batch (the batch's first offset + 1, and under
concurrent producers even less), while the high watermark its fetches report is right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from c2f_shared.service.consumer import FETCH_LOOP_POLL_MS, set_fetch_wait
from c2f_shared.service.pipeline import INBOX, Gate, Pipeline, PoisonMessage
from c2f_shared.service.settings import ServiceSettings

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 10.0


async def replay(
    settings: ServiceSettings,
    db: AsyncDatabase[dict[str, Any]],
    gate: Gate,
    pipeline: Pipeline,
    forget: Iterable[str],
) -> int:
    """Rebuild a read model from the topics: empty the `forget` collections and the inbox, then
    feed every event still on the pipeline's topics, oldest first, through it.

    Live consumers wait meanwhile (the gate); what they receive afterwards is recognised by the
    rebuilt inbox. Events the broker no longer keeps (retention) cannot come back.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    replayed = 0
    try:
        async with gate.exclusive():
            for name in [*forget, INBOX]:
                await db[name].delete_many({})
            partitions = [
                TopicPartition(t, p)
                for t in pipeline.topics
                for p in sorted(consumer.partitions_for_topic(t) or [])
            ]
            consumer.assign(partitions)
            ends = await exact_end_offsets(consumer, partitions)
            await consumer.seek_to_beginning(*partitions)

            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in partitions])

            while await behind():
                batch = await consumer.getmany(timeout_ms=500)
                for record in sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp):
                    if record.offset >= ends[TopicPartition(record.topic, record.partition)]:
                        continue
                    try:
                        await pipeline.process_alone(record.value)
                    except PoisonMessage:
                        continue  # it was dead-lettered when it first arrived
                    replayed += 1
    finally:
        await consumer.stop()
    log.info("replayed %d events into a fresh read model", replayed)
    return replayed


async def exact_end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], within: float = 10.0
) -> dict[TopicPartition, int]:
    """Each partition's end offset as a fetch reports it (its high watermark), never less than the
    broker lists. Assigns `partitions` to `consumer` and moves its positions (seek afterwards)."""
    if not partitions:
        return {}
    listed: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    consumer.assign(partitions)  # afresh: no high watermark known yet
    for tp in partitions:
        consumer.seek(tp, listed[tp])  # at most the tail batch comes back
    async with asyncio.timeout(within):
        while any(consumer.highwater(tp) is None for tp in partitions):
            await consumer.getmany(*partitions, timeout_ms=10)
    return {tp: max(listed[tp], consumer.highwater(tp)) for tp in partitions}


PROBE_FETCH_WAIT_MS = 10  # a fetch at the end answers at once
PAUSED_POLL_S = 60.0  # how often the fetch loop of a paused probe wakes up on its own


class OffsetProbe:
    """Reads partitions' exact end offsets with a client of its own (no group)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self._consumer is None:
            timeouts = self._settings.kafka_timeouts_ms()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=timeouts.request_timeout_ms,
                metadata_max_age_ms=timeouts.metadata_max_age_ms,
                fetch_max_wait_ms=PROBE_FETCH_WAIT_MS,
            )
            await self._consumer.start()
        try:
            set_fetch_wait(self._consumer, PROBE_FETCH_WAIT_MS, FETCH_LOOP_POLL_MS / 1000)
            ends = await exact_end_offsets(self._consumer, partitions)
            # Else its fetcher would keep asking for more at the end of each partition, every
            # 10 ms, for as long as the service runs; paused, its fetch loop has nothing to do
            # until the next probe assigns the partitions afresh (which wakes it).
            self._consumer.pause(*partitions)
            set_fetch_wait(self._consumer, PROBE_FETCH_WAIT_MS, PAUSED_POLL_S)
        except BaseException:
            # After a broker restart the probe's connections can stay broken: start afresh next time.
            await self.stop()
            raise
        return ends

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_SECONDS):
                    await consumer.stop()
