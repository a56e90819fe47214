"""A service's Kafka consumer: subscribed through FastStream to the topics its handlers take, in
the service's consumer group, processing different partitions side by side and each partition's
messages in order (so the events of one key, e.g. one company, are handled in the order sent).

FastStream's consume loop hands each record to a lane, one per partition; the lane runs what
is waiting (up to BATCH_MAX records) through the retry policy and the pipeline in one unit of
work (one at a time when that fails), and marks the partition done up to it. A committer
commits what the lanes finished, so offsets move only past handled messages (at-least-once). A
lane whose queue is full pauses its partition until it has caught up. When a rebalance takes a
partition away, its lane stops and what it had not committed is read again by the new owner,
whose inbox recognises it.

A broker that lost its topics (the embedded one, restarted: it keeps them in memory) has lost
the group's committed offsets and members too, and may already hold, republished by the outboxes,
more records than the consumer had read. So offsets are committed only by a member the
coordinator knows (a commit from a forgotten member would carry the old broker's position into
the new one's empty group); and with `reread_after_loss` (the embedded broker's loss watch) a
consumer whose membership the coordinator forgot reads the partitions it is given next from their
first record, the inbox dropping what it had handled. A fetch past the end of a shorter new log
is answered OffsetOutOfRange, which `auto_offset_reset="earliest"` also turns into the start.

While nothing arrives the consumer asks the broker to hold each fetch longer (`idle`), so an
idle stack does not poll the embedded broker a hundred times a second; the first record wakes
it back to `busy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.schemas import Topic
from faststream.message import StreamMessage

from c2f_shared import topics
from c2f_shared.service import tracing
from c2f_shared.service.pipeline import Pipeline, Received, RetryPolicy, Where
from c2f_shared.service.settings import ServiceSettings

log = logging.getLogger(__name__)

QUEUE_MAX = 200  # records waiting in one lane before its partition is paused
BATCH_MAX = 50  # records of one lane handled in one unit of work, when that many are waiting
IDLE_AFTER_S = 2.0  # nothing received for this long: fetch with the idle wait
FETCH_LOOP_POLL_MS = 200  # aiokafka's fetch loop wakes up this often on its own (its default)
COMMIT_RETRY_S = 2.0  # a commit that failed (e.g. during a rebalance) is tried again this soon
# Offsets are committed at most this often: what the lanes finish meanwhile goes in one commit (a
# record a service only skips, such as its own events coming back, cost a commit each). A kill
# loses at most this much of the commits: those records are read again and the inbox drops them.
COMMIT_EVERY_S = 0.2


async def _record(message: StreamMessage[Any]) -> Any:
    """The aiokafka record under FastStream's message, as what the handler receives. Taking it
    as an argument annotated `KafkaMessage` costs a thread hop per record: FastStream's injection
    resolves that annotation with a plain function, which it runs in a worker thread. The lanes
    parse the record's value themselves (`Pipeline.parse`)."""
    return message.raw_message


def _event_type(headers: Any) -> str | None:
    """The type the record's `event-type` header names (the outbox sets it), if any."""
    for name, value in headers or ():
        if name == "event-type" and value is not None:
            return bytes(value).decode(errors="replace")
    return None


@dataclass
class _Lane:
    task: asyncio.Task[None] | None = None
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    done: int | None = None  # the next offset to read: everything before it is handled
    committed: int | None = None
    paused: bool = False


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no type hints
    def __init__(self, consumer: Consumer, reread_after_loss: bool) -> None:
        self._consumer = consumer
        self._reread_after_loss = reread_after_loss
        self.joined = False
        self.assigned: set[TopicPartition] = set()
        self.rereads = 0  # partitions read again from the start after a loss

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = set(revoked)
        if revoked and not self._consumer.is_member():
            self._consumer.forgotten()
        self.assigned -= revoked
        # A forgotten member commits nothing here (_commit): the partitions' next owner reads from
        # the last commit, and its inbox drops what was handled.
        await self._consumer.close_lanes(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        self.assigned |= assigned
        self.joined = True
        if self._reread_after_loss:
            self.rereads += self._consumer.read_doubtful_from_start(assigned)


class Consumer:
    def __init__(
        self,
        name: str,
        service: str,
        broker: KafkaBroker,
        settings: ServiceSettings,
        pipeline: Pipeline,
        policy: RetryPolicy,
    ) -> None:
        self.name = name
        self.pipeline = pipeline
        self._policy = policy
        self.assignment = _Assignment(self, reread_after_loss=settings.broker_loss_watch)
        self._lanes: dict[TopicPartition, _Lane] = {}
        self._commit_wanted = asyncio.Event()
        # Since the coordinator last forgot this member (None: never), the partitions whose
        # offset it committed since, as a member, with no forgetting in between.
        self._trusted: set[TopicPartition] | None = None
        self._forgets = 0
        self._last_record = 0.0
        self._idle = False
        timeouts = settings.kafka_timeouts_ms()
        self._busy_wait_ms = timeouts.fetch_max_wait_ms
        self._idle_wait_ms = max(timeouts.fetch_max_wait_ms, timeouts.idle_fetch_max_wait_ms)
        self.subscriber = broker.subscriber(
            *[Topic(t, num_partitions=topics.PARTITIONS) for t in pipeline.topics],
            group_id=settings.consumer_group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,  # the lanes and the committer move the offsets
            listener=self.assignment,
            title=f"{service}.{name}",
            session_timeout_ms=timeouts.session_timeout_ms,
            heartbeat_interval_ms=timeouts.heartbeat_interval_ms,
            rebalance_timeout_ms=timeouts.rebalance_timeout_ms,
            fetch_max_wait_ms=timeouts.fetch_max_wait_ms,
            decoder=_record,
        )

        async def receive(record: Any) -> None:  # the aiokafka record (see _record)
            self._take(record)

        receive.__name__ = name
        self.subscriber(receive)

    @property
    def kafka(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer under FastStream's subscriber (None before it starts)."""
        consumer: AIOKafkaConsumer | None = self.subscriber.consumer
        return consumer

    def background(self) -> list[asyncio.Task[None]]:
        """The consumer's own tasks, for the life of the service."""
        return [
            asyncio.create_task(self._commit_forever(), name=f"{self.name}-commits"),
            asyncio.create_task(self._idle_watch(), name=f"{self.name}-idle"),
        ]

    # -- lanes -------------------------------------------------------------------------------

    def _take(self, record: Any) -> None:
        tp = TopicPartition(record.topic, record.partition)
        if self.assignment.joined and tp not in self.assignment.assigned:
            return  # fetched before its partition was taken away: its next owner reads it
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = _Lane()
            lane.task = asyncio.create_task(
                self._run(tp, lane), name=f"{self.name}-{tp.topic}[{tp.partition}]"
            )
        lane.queue.put_nowait(record)
        if lane.queue.qsize() >= QUEUE_MAX and not lane.paused and self.kafka is not None:
            self.kafka.pause(tp)
            lane.paused = True
        self._last_record = time.monotonic()
        if self._idle:
            self._set_fetch_wait(self._busy_wait_ms)
            self._idle = False

    async def _run(self, tp: TopicPartition, lane: _Lane) -> None:
        while True:
            records = [await lane.queue.get()]
            while len(records) < BATCH_MAX and not lane.queue.empty():
                records.append(lane.queue.get_nowait())
            batch = [
                Received(
                    Where(r.topic, r.partition, r.offset),
                    r.value,
                    tracing.from_headers(r.headers),
                    event_type=_event_type(r.headers),
                )
                for r in records
            ]
            await self._policy.settle_all(batch, self.pipeline)
            lane.done = records[-1].offset + 1
            self._commit_wanted.set()
            if lane.paused and lane.queue.qsize() <= QUEUE_MAX // 4 and self.kafka is not None:
                with contextlib.suppress(Exception):  # the partition was taken away meanwhile
                    self.kafka.resume(tp)
                lane.paused = False

    def is_member(self) -> bool:
        """Whether the group's coordinator knows this consumer as a member (it forgets it when the
        member missed its session, or when the broker restarted empty)."""
        # aiokafka resets the generation to -1 (and the member id to "") when the coordinator
        # answers that it does not know the member; both are set again once it has joined.
        coordinator = getattr(self.kafka, "_coordinator", None)
        generation: int = getattr(coordinator, "generation", -1)
        return generation >= 0 and bool(getattr(coordinator, "member_id", ""))

    def forgotten(self) -> None:
        """The coordinator forgot this member: its group may be gone with the broker's topics."""
        self._forgets += 1
        self._trusted = set()

    def read_doubtful_from_start(self, partitions: set[TopicPartition]) -> int:
        """Once the coordinator forgot this member, read each partition given to it again from
        its first record (a restarted broker's log begins anew, and a committed offset may have
        been carried over from the old one), until this member has committed it afresh.
        Synchronous (called as the partitions are assigned), so no fetch comes first."""
        kafka = self.kafka
        if self._trusted is None or kafka is None:
            return 0
        doubtful = sorted(partitions - self._trusted)
        if doubtful:
            log.warning(
                "%s: the broker forgot this consumer's group; reading %d partitions again from the start",
                self.name,
                len(doubtful),
            )
        for tp in doubtful:
            # 0, not seek_to_beginning (which waits for the broker): where the log starts later
            # (retention), the fetch is answered OffsetOutOfRange and reset to the earliest.
            kafka.seek(tp, 0)
        return len(doubtful)

    async def close_lanes(self, partitions: set[TopicPartition]) -> None:
        """The partitions were taken away: stop their lanes and commit what they finished."""
        closing = {tp: self._lanes.pop(tp) for tp in partitions if tp in self._lanes}
        for lane in closing.values():
            if lane.task is not None:
                lane.task.cancel()
        for lane in closing.values():
            if lane.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.task
        await self._commit(closing)

    async def stop(self) -> None:
        """Stop every lane (at shutdown, before the broker closes) and commit what they finished."""
        await self.close_lanes(set(self._lanes))

    # -- offsets -----------------------------------------------------------------------------

    async def _commit_forever(self) -> None:
        """Commit as lanes finish messages, at most every COMMIT_EVERY_S; and, every few seconds,
        what a commit refused during a rebalance left behind (else a partition that goes quiet
        would never show as caught up)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMIT_RETRY_S):
                    await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit(self._lanes)
            await asyncio.sleep(COMMIT_EVERY_S)

    async def _commit(self, lanes: dict[TopicPartition, _Lane]) -> None:
        offsets = {
            tp: lane.done
            for tp, lane in lanes.items()
            if lane.done is not None and lane.done != lane.committed
        }
        kafka = self.kafka
        if not offsets or kafka is None or not self.is_member():
            return  # a forgotten member commits nothing (see the module's docstring)
        forgets = self._forgets
        try:
            await kafka.commit(offsets)
        except (KafkaError, AssertionError) as error:  # AssertionError: no longer assigned
            # The new owner of a partition reads it again from its last commit; its inbox
            # recognises what was handled here.
            log.warning("%s: could not commit %s (%s: %s)", self.name, offsets, type(error).__name__, error)
            return
        for tp, offset in offsets.items():
            if tp in lanes:  # not closed meanwhile
                lanes[tp].committed = offset
        if self._trusted is not None:
            if forgets == self._forgets:
                self._trusted |= set(offsets)
            else:  # forgotten while committing: the commit may have gone to a new group
                self._trusted -= set(offsets)

    # -- idle --------------------------------------------------------------------------------

    async def _idle_watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            quiet = time.monotonic() - self._last_record > IDLE_AFTER_S
            if quiet and not self._idle and all(lane.queue.empty() for lane in self._lanes.values()):
                self._set_fetch_wait(self._idle_wait_ms)
                self._idle = True

    def _set_fetch_wait(self, ms: int) -> None:
        set_fetch_wait(self.kafka, ms, max(ms, FETCH_LOOP_POLL_MS) / 1000)


def set_fetch_wait(consumer: AIOKafkaConsumer | None, ms: int, poll_s: float) -> None:
    """How long the broker may hold `consumer`'s fetches (`ms`), and how often its fetch loop
    wakes up on its own meanwhile (`poll_s`: every 0.2 s by default, which an idle service
    need not do; a fetch that answers, a new assignment or a resume wakes it anyway). aiokafka
    reads both each time, but has no public setter."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    if all(hasattr(fetcher, name) for name in ("_fetch_max_wait_ms", "_fetcher_timeout")):
        fetcher._fetch_max_wait_ms = ms
        fetcher._fetcher_timeout = poll_s
