"""Transactional outbox: events are stored with the state change, then published.

A write and the events it causes commit together in the service's database; a
relay publishes what is pending and marks it. A crash between the two publishes
again on restart (at-least-once); consumers deduplicate on the event id.

Published events are kept for a week. If the broker loses them (a topic's end offset
falls below what this service saw it reach: the embedded broker keeps topics in memory,
or an operator re-created a topic), everything still kept is published again, in order.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from c2f_shared.envelope import Envelope
from c2f_shared.service.singly import update_singly
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

PUBLISHED_RETENTION = timedelta(days=7)


class Outbox:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], broker: KafkaBroker) -> None:
        self._coll = db["outbox"]
        self._broker = broker
        self._waker = Waker()
        self.published = 0
        self.losses = 0  # times the broker was found to have lost published events
        self._reached: dict[TopicPartition, int] = {}  # the next offset, as far as we have seen

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("published", ASCENDING), ("seq", ASCENDING)])
        await self._coll.create_index(
            "published_at", expireAfterSeconds=int(PUBLISHED_RETENTION.total_seconds())
        )

    async def add(self, emitted: list[tuple[Envelope, str]], session: AsyncClientSession) -> None:
        """Store (envelope, topic) pairs in the caller's transaction, in order, in one write.
        $setOnInsert: re-deriving a fact with the same deterministic id stores it once."""
        if not emitted:
            return
        first = time.time_ns()
        await self._coll.bulk_write(
            [
                UpdateOne(
                    {"_id": envelope.event_id},
                    {
                        "$setOnInsert": {
                            "topic": topic,
                            "key": envelope.key,
                            "type": envelope.type,
                            "payload": envelope.model_dump_json(),
                            "correlation_id": envelope.correlation_id,
                            "seq": first + i,  # the order they were emitted in
                            "published": False,
                        }
                    },
                    upsert=True,
                )
                for i, (envelope, topic) in enumerate(emitted)
            ],
            ordered=True,
            session=session,
        )

    async def forget(self, query: dict[str, Any], session: AsyncClientSession) -> None:
        """Erasure: drop stored events matching `query` (e.g. {"key": id}), published or not."""
        await self._coll.delete_many(query, session=session)

    def wake(self) -> None:
        self._waker.wake()

    async def pending(self) -> int:
        return await self._coll.count_documents({"published": False})

    async def publish_pending(self, batch: int = 200) -> int:
        """Publish what is pending, oldest first; returns how many were published.

        One record at a time, each acknowledged before the next is sent: a partition's records
        stay in order, and each goes in a batch of its own (Tansu, the embedded broker, reports
        a partition's end offset short after a multi-record batch, which `watch_for_loss` would
        take for a loss). What was sent is marked published in one write, also when a later
        send failed; a crash before that write publishes them again (consumers deduplicate)."""
        docs = await self._coll.find({"published": False}).sort("seq", ASCENDING).limit(batch).to_list(None)
        sent: list[Any] = []
        try:
            for doc in docs:
                record = await self._broker.publish(
                    doc["payload"].encode(),
                    topic=doc["topic"],
                    key=doc["key"].encode(),
                    headers={
                        "content-type": "application/json",
                        "event-type": doc["type"],
                        "correlation-id": doc["correlation_id"],
                    },
                )
                tp = TopicPartition(record.topic, record.partition)
                self._reached[tp] = max(self._reached.get(tp, 0), record.offset + 1)
                sent.append(doc["_id"])
        finally:
            if sent:
                marks = {"$set": {"published": True, "published_at": datetime.now(UTC)}}
                await update_singly(self._coll, {}, marks, ids=sent)
                self.published += len(sent)
        return len(sent)

    def reached(self) -> dict[TopicPartition, int]:
        """Per partition this service published to: the end offset it saw the partition reach."""
        return dict(self._reached)

    async def republish_after_loss(self, lost: Iterable[TopicPartition]) -> int:
        """The broker lost events: publish again everything still kept, oldest first.
        Consumers recognise what they had already processed by its event id."""
        lost = sorted(f"{tp.topic}[{tp.partition}]" for tp in lost)
        again = await update_singly(
            self._coll, {"published": True}, {"$set": {"published": False}, "$unset": {"published_at": ""}}
        )
        self._reached.clear()
        self.losses += 1
        log.warning(
            "the broker lost published events (%s); publishing the %d kept in the outbox again",
            ", ".join(lost),
            again,
        )
        self.wake()
        return again

    async def watch_for_loss(self, end_offsets: Callable[[list[TopicPartition]], Any], every: float) -> None:
        """Every `every` seconds, compare each partition's end offset with what this service saw
        it reach; one that fell back (or vanished) means the broker lost events."""
        while True:
            await asyncio.sleep(every)
            reached = self.reached()
            if not reached:
                continue
            try:
                async with asyncio.timeout(max(5.0, every)):
                    ends: dict[TopicPartition, int] = await end_offsets(list(reached))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the broker is away: the next round will tell
                log.info("could not read end offsets (%s); will check again", type(error).__name__)
                continue
            lost = [tp for tp, offset in reached.items() if ends.get(tp, 0) < offset]
            if lost:
                await self.republish_after_loss(lost)

    async def relay_forever(self, idle_poll: float = 2.0) -> None:
        """Publish pending events whenever woken (a unit of work that emitted something commits),
        and every `idle_poll` seconds: what another instance of the service left pending when it
        died, or what failed to publish."""
        while True:
            try:
                while await self.publish_pending():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - whatever failed, the events wait and are retried
                log.warning("outbox relay failed (%s: %s); retrying", type(error).__name__, error)
                await asyncio.sleep(1.0)
            await self._waker.sleep(idle_poll)
