"""Transactional outbox: events are stored with the state change, then published.

A write and the events it causes commit together in the service's database; a relay publishes
what is pending and marks it. A crash between the two publishes again on restart (at-least-once);
consumers deduplicate on the event id.

Several instances of a service share one outbox: a relay sends only while it holds the outbox's
lease (owner and expiry, renewed each round), so two relays never send the same rows at once and
events go out in the order they were stored; when the holder dies, its lease runs out and another
instance sends what is pending. A batch of the oldest pending rows is sent without waiting for
each record (the producer keeps each partition's records in order), then marked published.

Published events are kept (a week by default). With `watch` given (the embedded broker, which
keeps topics in memory), the outbox remembers in the database how far it saw each partition
reach; if the broker holds less, at start or later (a new, empty broker), everything still kept
is published again, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from c2f_shared.service import tracing
from c2f_shared.service.apart import update_apart
from c2f_shared.service.unit_of_work import DUPLICATE_KEY, Emitted, insert_absent
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

Doc = dict[str, Any]
# The exact end offset of each partition (see replay.OffsetProbe: the embedded broker's listed
# end offsets fall short after a multi-record batch, so they are read from a fetch).
EndOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]

PUBLISHED_RETENTION = timedelta(days=7)
LEASE = timedelta(seconds=15)  # a round takes about a second; a dead relay's rows wait this long
# Rows a round reads and sends. SecantusDB reads every pending row to answer the round's
# query (`published: False`, by `seq`, whatever the limit: 170 ms with 3,000 pending), so a
# round that takes a backlog whole costs one such read instead of six.
BATCH = 2000
MARK_CHUNK = 100
OUTBOX = "outbox"  # the events, pending and published
REACHED = "outbox_reached"  # per partition: the end offset this service saw it reach
LEASES = "outbox_lease"  # which instance relays, until when
RELAY = "relay"
TTL_INDEX = "published_at_1"
CHECK_TIMEOUT_S = 10.0
SAVE_REACHED_EVERY_S = 1.0
# A batch is sent without asking the broker first when it was found whole this recently (the
# watch asks every 2 s on the embedded stack).
CHECKED_S = 5.0
# An outbox that published nothing for this long checks for a loss less often.
QUIET_AFTER_S = 30.0
IDLE_CHECK_FACTOR = 2.5
# After a round that published something, the relay waits this long before the next: under a
# stream of commits (a registration each few ms) what commits meanwhile goes in one round (one
# read, one send, one mark) instead of a round each. A commit after a quiet spell is sent at once.
BUSY_GATHER_S = 0.1


def _rows(emitted: list[Emitted]) -> list[Doc]:
    """The outbox's rows for events, in the order they were emitted."""
    first = time.time_ns()
    return [
        {
            "_id": envelope.event_id,
            "topic": topic,
            "key": envelope.key,
            "type": envelope.type,
            "payload": envelope.model_dump_json(),
            "correlation_id": envelope.correlation_id,
            "seq": first + i,  # the order they were emitted in
            "published": False,
            **({"trace": trace} if trace else {}),
        }
        for i, (envelope, topic, trace, _) in enumerate(emitted)
    ]


class Outbox:
    def __init__(
        self,
        db: AsyncDatabase[Doc],
        broker: KafkaBroker,
        *,
        watch: EndOffsets | None = None,
        lease: timedelta = LEASE,
        keep: timedelta | None = PUBLISHED_RETENTION,
    ) -> None:
        """`watch`: read partitions' end offsets to notice a broker that lost events (only for
        a broker that keeps nothing on disk); `keep`: how long published events stay (None:
        for good)."""
        self._coll = db[OUTBOX]
        self._reached_coll = db[REACHED]
        self._lease_coll = db[LEASES]
        self._broker = broker
        self._watch = watch
        self._lease = lease
        self._keep = keep
        self._waker = Waker()
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._holding_until: datetime | None = None  # the lease this relay holds, until when
        self._reached_saved = 0.0  # monotonic time `outbox_reached` was last written
        self._found_whole = 0.0  # monotonic time the broker was last found to hold it all
        self._last_sent = 0.0  # monotonic time a batch was last published
        self._reached_dirty: set[TopicPartition] = set()
        self._reached_stored: set[TopicPartition] = set()  # in `outbox_reached` since the last loss
        self._lock = asyncio.Lock()  # one round or one republish at a time in this process
        self.published = 0
        self.losses = 0  # times the broker was found to have lost published events
        self._reached: dict[TopicPartition, int] = {}  # the next offset, as far as we have seen

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("published", ASCENDING), ("seq", ASCENDING)])
        indexes = await self._coll.index_information()
        ttl = None if self._keep is None else int(self._keep.total_seconds())
        current = indexes.get(TTL_INDEX, {}).get("expireAfterSeconds")
        if TTL_INDEX in indexes and current != ttl:
            await self._coll.drop_index(TTL_INDEX)
        if ttl is not None and current != ttl:
            await self._coll.create_index("published_at", name=TTL_INDEX, expireAfterSeconds=ttl)

    async def add(self, emitted: list[Emitted], session: AsyncClientSession) -> None:
        """Store what a unit of work emitted in its transaction, in order (with the trace
        context each event was emitted in, when traces are on). Re-deriving a fact with the
        same deterministic id stores it once (`insert_absent`: a read of the ids, then an
        insert); events with fresh random ids are inserted without the read, so a registration
        stores its event in one statement."""
        rows = _rows(emitted)
        fresh = [row for row, e in zip(rows, emitted, strict=True) if e.fresh]
        if fresh:
            await self._coll.insert_many(fresh, ordered=True, session=session)
        if len(fresh) < len(rows):
            await insert_absent(
                self._coll, [row for row, e in zip(rows, emitted, strict=True) if not e.fresh], session
            )

    async def add_now(self, emitted: list[Emitted]) -> None:
        """Store facts at once, outside any transaction, in one write, and wake the relay. For a
        writer that needs no transaction because it orders its writes (the fact first, then
        what says it is done) and derives each fact's id, so that doing it all again after a
        crash stores nothing twice: a fact whose id is stored already is left as it is."""
        if not emitted:
            return
        try:
            await self._coll.insert_many(_rows(emitted), ordered=False)
        except BulkWriteError as error:
            details = error.details
            if details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in details.get("writeErrors", [])
            ):
                raise
        self.wake()

    async def stored(self, ids: list[str]) -> set[str]:
        """Which of these event ids the outbox holds (published or not)."""
        if not ids:
            return set()
        return {doc["_id"] async for doc in self._coll.find({"_id": {"$in": ids}}, {"_id": 1})}

    async def forget(self, query: dict[str, Any], session: AsyncClientSession) -> None:
        """Erasure: drop stored events matching `query` (e.g. {"key": id}), published or not."""
        await self._coll.delete_many(query, session=session)

    def wake(self) -> None:
        self._waker.wake()

    async def pending(self) -> int:
        return await self._coll.count_documents({"published": False})

    # -- relaying ------------------------------------------------------------------------------

    async def publish_pending(self, batch: int = BATCH) -> int:
        """Send the oldest pending rows, if this relay holds the lease, and mark what the broker
        acknowledged; returns how many were published (0 when nothing is pending or another
        instance relays).

        With `watch`, the broker is asked first whether it still holds what was published
        before, which also makes it create the batch's topics: the embedded broker, restarted,
        acknowledges records for a topic it has not created yet and never shows them. That
        costs 30-300 ms, so it is skipped when the broker was found whole within CHECKED_S and
        every topic of the batch was published to before: a loss since then is still found, by
        an acknowledged offset below what was reached (`_note_reached`) or by the next check."""
        async with self._lock:
            idle = self._holding_until is None
            if idle and not await self._coll.find_one({"published": False}, {"_id": 1}):
                return 0  # nothing pending: no lease to take (an idle round is one read)
            if not await self._take_lease():
                return 0
            docs = (
                await self._coll.find({"published": False}).sort("seq", ASCENDING).limit(batch).to_list(None)
            )
            if not docs:
                return 0
            if self._must_check({doc["topic"] for doc in docs}) and await self._check_for_loss(
                {doc["topic"] for doc in docs}
            ):
                return 0  # everything is pending again, oldest first: the next round
            acked, error = await self._send(docs)
            lost = self._note_reached([record for _, record in acked])
            await self._mark(acked)
            if error is not None:
                raise error
            if lost:
                await self._republish(lost)
            return len(acked)

    async def _take_lease(self) -> bool:
        """Take or renew the relay lease. Only the holder relays, so the rows go out in the order
        they were stored, once, however many instances share the outbox; when the holder dies,
        its lease runs out and another instance takes over. A lease with more than two thirds
        left is not written again (each write costs the embedded database a millisecond)."""
        now = datetime.now(UTC)
        if self._holding_until is not None and now < self._holding_until - self._lease / 3:
            return True
        until = now + self._lease
        try:
            await self._lease_coll.update_one(
                {"_id": RELAY, "$or": [{"owner": self._owner}, {"lease_until": {"$lt": now}}]},
                {"$set": {"owner": self._owner, "lease_until": until}},
                upsert=True,
            )
        except DuplicateKeyError:
            self._holding_until = None
            return False  # held by another instance, not yet run out
        self._holding_until = until
        return True

    async def give_up_lease(self) -> None:
        """Idle, failing or stopping: let another instance relay at once."""
        if self._holding_until is None:
            return
        self._holding_until = None
        with contextlib.suppress(Exception):  # it will run out
            async with asyncio.timeout(5):
                await self._lease_coll.delete_one({"_id": RELAY, "owner": self._owner})

    async def _send(self, docs: list[Doc]) -> tuple[list[tuple[Doc, Any]], BaseException | None]:
        """Send every record without waiting for each (the producer keeps a partition's records
        in order and sends one batch per partition at a time), then wait for them all. Returns
        what was acknowledged, in order, and the first error."""
        futures: list[tuple[Doc, asyncio.Future[Any]]] = []
        error: BaseException | None = None
        try:
            for doc in docs:
                with tracing.continued(doc.get("trace")):  # the publish span joins the event's trace
                    future = await self._broker.publish(
                        doc["payload"].encode(),
                        topic=doc["topic"],
                        key=doc["key"].encode(),
                        headers={
                            "content-type": "application/json",
                            "event-type": doc["type"],
                            "correlation-id": doc["correlation_id"],
                            **doc.get("trace", {}),
                        },
                        no_confirm=True,
                    )
                futures.append((doc, future))
        except Exception as failed:  # noqa: BLE001 - what was handed to the producer is awaited below
            error = failed
        results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        acked: list[tuple[Doc, Any]] = []
        for (doc, _), result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                acked.append((doc, result))
        return acked, error

    def _note_reached(self, records: list[Any]) -> list[TopicPartition]:
        """Remember how far each partition got; return those where the broker acknowledged an
        offset below what it had reached before (its log started again: a loss)."""
        lost: set[TopicPartition] = set()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            before = self._reached.get(tp, 0)
            if record.offset < before and self._watch is not None:
                lost.add(tp)
            self._reached[tp] = max(before, record.offset + 1)
        return sorted(lost)

    async def _mark(self, acked: list[tuple[Doc, Any]]) -> None:
        """Mark what was sent published, and note in the database how far the partitions got
        (what a restarted service compares with the broker). One bulk write per MARK_CHUNK rows,
        a statement per row by its id.

        A partition `outbox_reached` does not hold yet (none since the last loss) is noted
        before its rows are marked: a row marked published on a partition the database knows
        nothing of would not be published again after the next loss (a new broker compared with
        nothing shows no loss)."""
        if not acked:
            return
        if self._watch is not None:
            self._reached_dirty |= {TopicPartition(r.topic, r.partition) for _, r in acked}
            unknown = self._reached_dirty - self._reached_stored
            if unknown or time.monotonic() - self._reached_saved >= SAVE_REACHED_EVERY_S:
                await self.save_reached()
        now = datetime.now(UTC)
        docs = [doc for doc, _ in acked]  # oldest first
        marks = {"$set": {"published": True, "published_at": now}}
        for start in range(0, len(docs), MARK_CHUNK):
            # In a transaction of its own (see apart.py: transactions write this collection too).
            # By id alone: SecantusDB looks an `_id`-only filter up by key, but one that also
            # names `published` walks every pending row of the (published, seq) index, which
            # under a backlog of thousands made each mark of 100 rows cost 0.3 s. Only the
            # lease holder marks, so no guard is needed.
            chunk = [d["_id"] for d in docs[start : start + MARK_CHUNK]]
            await update_apart(self._coll, {}, marks, ids=chunk)
        self.published += len(docs)
        self._last_sent = time.monotonic()

    async def save_reached(self) -> None:
        """Write how far the partitions got to `outbox_reached` (at most every
        SAVE_REACHED_EVERY_S while relaying, and when the relay rests or stops). What a restart
        compares with may lag by that much: a new broker still shows less than it."""
        dirty, self._reached_dirty = self._reached_dirty, set()
        self._reached_saved = time.monotonic()
        writes = [
            UpdateOne(
                {"_id": f"{tp.topic}:{tp.partition}"},
                {
                    "$max": {"offset": self._reached[tp]},
                    "$setOnInsert": {"topic": tp.topic, "partition": tp.partition},
                },
                upsert=True,
            )
            for tp in sorted(dirty)
            if tp in self._reached  # not forgotten by a republish since
        ]
        if writes and self._watch is not None:
            try:
                await self._reached_coll.bulk_write(writes, ordered=False)
            except BaseException:
                self._reached_dirty |= dirty  # written next time
                raise
            self._reached_stored |= {tp for tp in dirty if tp in self._reached}

    # -- broker loss ---------------------------------------------------------------------------

    def reached(self) -> dict[TopicPartition, int]:
        """Per partition this service published to: the end offset it saw the partition reach."""
        return dict(self._reached)

    async def reconcile(self) -> None:
        """At start: take up how far the partitions got (as this service's instances saw them
        reach) and, if the broker now holds less, publish everything kept again."""
        if self._watch is None:
            return
        async for doc in self._reached_coll.find():
            tp = TopicPartition(doc["topic"], doc["partition"])
            self._reached[tp] = max(self._reached.get(tp, 0), int(doc["offset"]))
            self._reached_stored.add(tp)
        try:
            await self.check_for_loss()
        except Exception as error:  # noqa: BLE001 - the relay checks again before it sends
            log.info(
                "could not compare with the broker at start (%s); will check again", type(error).__name__
            )

    async def check_for_loss(self) -> bool:
        """Compare each partition's end offset with what this service saw it reach; one that
        fell back (or vanished) means the broker lost events: publish everything kept again.
        Raises if the broker cannot answer."""
        async with self._lock:
            return await self._check_for_loss(set())

    def _must_check(self, topics: set[str]) -> bool:
        if self._watch is None:
            return False
        known = {tp.topic for tp in self._reached}
        return time.monotonic() - self._found_whole > CHECKED_S or not topics <= known

    async def _check_for_loss(self, topics: set[str]) -> bool:
        """check_for_loss, asking also about `topics` (so the broker has them); the caller holds
        the lock."""
        if self._watch is None:
            return False
        reached = self.reached()
        asked = set(reached) | {TopicPartition(t, 0) for t in topics}
        if not asked:
            return False
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            ends = await self._watch(sorted(asked))
        lost = [tp for tp, offset in reached.items() if ends.get(tp, 0) < offset]
        if lost:
            await self._republish(lost)
        else:
            self._found_whole = time.monotonic()
        return bool(lost)

    async def republish_after_loss(self, lost: Iterable[TopicPartition]) -> int:
        """The broker lost events: publish again everything still kept, oldest first.
        Consumers recognise what they had already processed by its event id."""
        async with self._lock:
            return await self._republish(lost)

    async def _republish(self, lost: Iterable[TopicPartition]) -> int:
        names = sorted(f"{tp.topic}[{tp.partition}]" for tp in lost)
        again = await update_apart(
            self._coll, {"published": True}, {"$set": {"published": False}, "$unset": {"published_at": ""}}
        )
        self._reached.clear()
        self._reached_stored.clear()
        await self._reached_coll.delete_many({})
        self.losses += 1
        log.warning(
            "the broker lost published events (%s); publishing the %d kept in the outbox again",
            ", ".join(names),
            again,
        )
        self.wake()
        return again

    async def watch_for_loss(self, every: float) -> None:
        """Every `every` seconds, check that the broker still holds what this service published
        (a service that publishes nothing would not notice otherwise); every IDLE_CHECK_FACTOR
        times that once it has published nothing for QUIET_AFTER_S (an idle stack)."""
        while True:
            quiet = time.monotonic() - self._last_sent > QUIET_AFTER_S
            await asyncio.sleep(every * IDLE_CHECK_FACTOR if quiet else every)
            try:
                await self.check_for_loss()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the broker is away: the next round will tell
                log.info("could not read end offsets (%s); will check again", type(error).__name__)

    async def relay_forever(self, idle_poll: float = 2.0) -> None:
        """Publish pending events whenever woken (a unit of work that emitted something commits),
        and every `idle_poll` seconds: what another instance left pending when it died, or what
        failed to publish. While busy, rounds are at least BUSY_GATHER_S apart. The lease is kept
        while there is work and given up once a round finds none, so an idle instance does not
        keep the others' events waiting."""
        while True:
            try:
                published = 0
                # A batch short of full took everything pending then; what commits after it
                # wakes the relay, so there is no need to look again.
                while (sent := await self.publish_pending()) > 0:
                    published += sent
                    if sent < BATCH:
                        break
                if not published:
                    await self._rest()
            except asyncio.CancelledError:
                await self._rest()
                raise
            except Exception as error:  # noqa: BLE001 - whatever failed, the events wait and are retried
                log.warning("outbox relay failed (%s: %s); retrying", type(error).__name__, error)
                await self._rest()  # another instance may do better meanwhile
                await asyncio.sleep(1.0)
            try:
                if published:  # busy: what commits meanwhile goes in the next round, together
                    await asyncio.sleep(BUSY_GATHER_S)
                await self._waker.sleep(idle_poll)
            except asyncio.CancelledError:
                await self._rest()  # stopped while it waits: how far it got is written
                raise

    async def _rest(self) -> None:
        with contextlib.suppress(Exception):  # written at the next round
            async with asyncio.timeout(5):
                await self.save_reached()
        await self.give_up_lease()
