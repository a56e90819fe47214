"""Transactional outbox: events are stored with the state change, then published.

A write and the events it causes commit together in the service's database; a
relay publishes what is pending and marks it. A crash between the two publishes
again on restart (at-least-once); consumers deduplicate on the event id.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from c2f_shared.envelope import Envelope
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

PUBLISHED_RETENTION = timedelta(days=7)


class Outbox:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], broker: KafkaBroker) -> None:
        self._coll = db["outbox"]
        self._broker = broker
        self._waker = Waker()
        self.published = 0

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("published", ASCENDING), ("seq", ASCENDING)])
        await self._coll.create_index(
            "published_at", expireAfterSeconds=int(PUBLISHED_RETENTION.total_seconds())
        )

    async def add(self, envelope: Envelope, topic: str, session: AsyncClientSession) -> None:
        # $setOnInsert: re-deriving a fact with the same deterministic id stores it once.
        await self._coll.update_one(
            {"_id": envelope.event_id},
            {
                "$setOnInsert": {
                    "topic": topic,
                    "key": envelope.key,
                    "type": envelope.type,
                    "payload": envelope.model_dump_json(),
                    "correlation_id": envelope.correlation_id,
                    "seq": time.time_ns(),
                    "published": False,
                }
            },
            upsert=True,
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
        """Publish what is pending, oldest first; returns how many were published."""
        sent = 0
        docs = await self._coll.find({"published": False}).sort("seq", ASCENDING).limit(batch).to_list(None)
        for doc in docs:
            await self._broker.publish(
                doc["payload"].encode(),
                topic=doc["topic"],
                key=doc["key"].encode(),
                headers={
                    "content-type": "application/json",
                    "event-type": doc["type"],
                    "correlation-id": doc["correlation_id"],
                },
            )
            await self._coll.update_one(
                {"_id": doc["_id"]},
                {"$set": {"published": True, "published_at": datetime.now(UTC)}},
            )
            sent += 1
        self.published += sent
        return sent

    async def relay_forever(self, idle_poll: float = 0.5) -> None:
        """Publish pending events whenever woken, and every `idle_poll` seconds."""
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
