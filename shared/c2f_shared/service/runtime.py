"""One service's connection to the platform: database, broker, inbox, outbox, health.

`Runtime` is built from settings in the service's app factory (never at import
time). HTTP routes and consumers change state through `unit_of_work()`: one
MongoDB transaction holding the state change, the outgoing events (outbox) and,
for consumers, the record that the incoming event was processed (inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.schemas import Topic
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError

from c2f_shared import topics
from c2f_shared.envelope import Envelope, UnknownEventType
from c2f_shared.events import Event, MessageDeadLettered
from c2f_shared.service.logs import log_context
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.settings import ServiceSettings

log = logging.getLogger(__name__)

Document = dict[str, Any]
# A consumer's handler: the typed event, its envelope, and the unit of work to change state in.
Handler = Callable[[Event, Envelope, "UnitOfWork"], Awaitable[None]]

T = TypeVar("T")

# A message that fails this many times in a row with an unexpected error is set
# aside as a dead letter, so one bad message never stops a consumer.
MAX_ATTEMPTS = 5
RETRY_PAUSE_S = 0.5
SHUTDOWN_SECONDS = 10.0  # longest wait for the broker or the database to close
# How often the outbox checks that the broker still holds what it published (see Outbox).
LOSS_CHECK_S = {"fast": 2.0, "standard": 30.0}
# A message the database cannot take yet (a write conflict, a lost server) is retried
# without counting against it, at most this far apart.
TRANSIENT_PAUSE_MAX_S = 5.0


class PoisonMessage(Exception):
    """The message can never be processed; it goes to the dead letters with this reason."""


class StillFailing(Exception):
    """A re-driven dead letter failed again; it stays a dead letter."""


@dataclass(frozen=True)
class _Consumer:
    topics: tuple[str, ...]
    handler: Handler
    only: tuple[type[Event], ...] | None


@dataclass
class UnitOfWork:
    """A transaction on the service's database, with the events it will publish."""

    db: AsyncDatabase[Document]
    session: AsyncClientSession
    correlation_id: str
    _runtime: Runtime
    _emitted: list[tuple[Envelope, str]] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def outbox(self) -> Outbox:
        return self._runtime.outbox

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this unit of work has committed (e.g. to wake a worker)."""
        self._after_commit.append(callback)

    def emit(self, event: Event, *, event_id: str | None = None) -> Envelope:
        """Publish `event` if, and only if, this unit of work commits."""
        envelope = Envelope.wrap(
            event,
            producer=self._runtime.service,
            correlation_id=self.correlation_id,
            event_id=event_id,
        )
        self._emitted.append((envelope, event.TOPIC))
        return envelope


class _Joined(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no type hints
    """Remembers that the consumer joined its group (assignment may be empty when scaled out)."""

    def __init__(self) -> None:
        self.joined = False
        self.assigned: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.assigned -= set(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned |= set(assigned)
        self.joined = True


class Runtime:
    def __init__(self, settings: ServiceSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id=f"c2f-{service}",
            acks="all",
            request_timeout_ms=settings.kafka_timeouts_ms().request_timeout_ms,
            metadata_max_age_ms=settings.kafka_timeouts_ms().metadata_max_age_ms,
            logger=logging.getLogger("c2f.broker"),
        )
        self._listeners: dict[str, _Joined] = {}
        self._subscribers: dict[str, Any] = {}  # name → faststream subscriber (its aiokafka consumer)
        self._consumers: dict[str, _Consumer] = {}
        self._probe: AIOKafkaConsumer | None = None  # reads end offsets (no group)
        self.metrics = Metrics()
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._waits: dict[tuple[str, int, int], int] = {}
        self._client: AsyncMongoClient[Document] | None = None
        self._outbox: Outbox | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._on_start: list[Callable[[Runtime], Awaitable[None]]] = []
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        # Held while a message is processed, so that a replay never interleaves with live consumers.
        self._processing = asyncio.Lock()

    # -- wiring ---------------------------------------------------------------

    @property
    def db(self) -> AsyncDatabase[Document]:
        if self._client is None:
            raise RuntimeError("runtime not started")
        return self._client[self.settings.mongo_db]

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("runtime not started")
        return self._outbox

    def on_start(self, hook: Callable[[Runtime], Awaitable[None]]) -> None:
        """Run `hook` once the database is connected, before consumers start."""
        self._on_start.append(hook)

    def background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop` for the life of the service, after consumers start."""
        self._background.append(loop)

    def consume(
        self,
        topic_names: Iterable[str],
        handler: Handler,
        *,
        name: str,
        only: tuple[type[Event], ...] | None = None,
    ) -> None:
        """Subscribe `handler` to `topic_names` in this service's consumer group.

        Offsets are committed only after the handler's unit of work commits
        (at-least-once); a redelivered event is recognised by its id and skipped.
        Events of other types than `only` (when given) are acknowledged without a
        transaction: the handler would do nothing with them.
        """
        listener = _Joined()
        self._listeners[name] = listener
        self._consumers[name] = _Consumer(tuple(topic_names), handler, only)
        timeouts = self.settings.kafka_timeouts_ms()
        subscriber = self.broker.subscriber(
            *[Topic(t, num_partitions=topics.PARTITIONS) for t in topic_names],
            group_id=self.settings.consumer_group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,  # _receive commits or rewinds each message itself
            listener=listener,
            title=f"{self.service}.{name}",
            session_timeout_ms=timeouts.session_timeout_ms,
            heartbeat_interval_ms=timeouts.heartbeat_interval_ms,
            rebalance_timeout_ms=timeouts.rebalance_timeout_ms,
            fetch_max_wait_ms=timeouts.fetch_max_wait_ms,
        )

        async def receive(message: KafkaMessage) -> None:
            await self._receive(message, handler, name, only)

        receive.__name__ = name
        subscriber(receive)
        self._subscribers[name] = subscriber

    def publishes(self, *event_types: type[Event]) -> None:
        """Declare what this service publishes, so its AsyncAPI document shows it."""
        for event_type in event_types:
            self.broker.publisher(
                event_type.TOPIC,
                title=f"{event_type.TOPIC}:{event_type.TYPE}",
                description=(event_type.__doc__ or event_type.TYPE).strip()
                + " Sent inside the Envelope (data = this payload), keyed by "
                + "the aggregate id.",
                schema=event_type,
            )

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = self
        self._client = AsyncMongoClient(self.settings.mongo_uri, tz_aware=True)
        self._outbox = Outbox(self.db, self.broker)
        await self._outbox.ensure_indexes()
        await self.db["dead_letters"].create_index("at")
        for hook in self._on_start:
            await hook(self)
        await self.broker.start()
        self._tasks = [
            asyncio.create_task(self._outbox.relay_forever(), name="outbox-relay"),
            asyncio.create_task(
                self._outbox.watch_for_loss(self._end_offsets, LOSS_CHECK_S[self.settings.kafka_timeouts]),
                name="broker-loss-watch",
            ),
        ]
        self._tasks += [asyncio.create_task(loop()) for loop in self._background]
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                _, stuck = await asyncio.wait(self._tasks, timeout=SHUTDOWN_SECONDS)
                for task in stuck:
                    log.warning(
                        "task %s did not stop within %s s; left behind", task.get_name(), SHUTDOWN_SECONDS
                    )
            # Shutdown is bounded: a send still in flight is abandoned, not waited for (the
            # outbox has not marked it published, so the next start sends it again).
            closings = [("broker", self.broker.stop()), ("database", self._client.close())]
            if self._probe is not None:
                closings.append(("offset probe", self._probe.stop()))
            for what, closing in closings:
                try:
                    async with asyncio.timeout(SHUTDOWN_SECONDS):
                        await closing
                except TimeoutError:
                    log.warning("closing the %s took over %s s; left behind", what, SHUTDOWN_SECONDS)
            self._client = None
            self._probe = None

    # -- state changes --------------------------------------------------------

    @asynccontextmanager
    async def unit_of_work(self, correlation_id: str | None = None) -> AsyncIterator[UnitOfWork]:
        """One transaction; the events emitted in it go to the outbox in the same commit."""
        assert self._client is not None, "runtime not started"
        async with self._client.start_session() as session, await session.start_transaction():
            uow = UnitOfWork(
                db=self.db,
                session=session,
                correlation_id=correlation_id or str(uuid.uuid4()),
                _runtime=self,
            )
            yield uow
            await self.outbox.add(uow._emitted, session)
        if uow._emitted:
            self.outbox.wake()
        for callback in uow._after_commit:
            callback()

    async def transact(
        self,
        work: Callable[[UnitOfWork], Awaitable[T]],
        correlation_id: str | None = None,
        attempts: int = 12,
    ) -> T:
        """Run `work` in a unit of work, again from the start if the transaction collided
        with a concurrent one (TransientTransactionError, e.g. a write conflict)."""
        for attempt in range(attempts):
            try:
                async with self.unit_of_work(correlation_id) as uow:
                    return await work(uow)
            except PyMongoError as error:
                if not error.has_error_label("TransientTransactionError") or attempt == attempts - 1:
                    raise
                await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise AssertionError("unreachable")

    # -- consuming ------------------------------------------------------------

    async def _receive(
        self, message: Any, handler: Handler, name: str, only: tuple[type[Event], ...] | None
    ) -> None:
        """Handle one message, then commit past it (done) or rewind to it (to come again).
        Nothing is raised to the broker's loop: one message never stops a consumer."""
        try:
            done = await self._handle(message, handler, name, only)
        except Exception:  # e.g. the dead letter could not be written: the message comes again
            log.exception("%s: could not finish with a message; it will come again", name)
            await asyncio.sleep(RETRY_PAUSE_S)
            done = False
        await self._settle(message, done=done)

    async def _settle(self, message: Any, *, done: bool) -> None:
        """Commit past the message (done) or rewind to it. If a rebalance gave the partition to
        another member meanwhile, neither is possible nor needed: the new owner reads the
        message again and its inbox recognises it."""
        try:
            await (message.ack() if done else message.nack())
        except KafkaError as error:
            record = message.raw_message
            log.warning(
                "could not %s %s[%d]@%d (%s: %s); its partition's owner will read it again",
                "commit" if done else "rewind",
                record.topic,
                record.partition,
                record.offset,
                type(error).__name__,
                error,
            )

    async def _handle(
        self, message: Any, handler: Handler, name: str, only: tuple[type[Event], ...] | None
    ) -> bool:
        """True: finished with the message (processed, skipped or set aside); False: again."""
        record = message.raw_message
        where = (record.topic, record.partition, record.offset)
        started = time.perf_counter()
        try:
            async with self._processing:
                outcome = await self._process(message.body, handler, only)
        except PoisonMessage as poison:
            self.metrics.failures.labels(name, record.topic, "poison").inc()
            await self._dead_letter(record, str(poison), message.body)
            self.metrics.messages.labels(name, record.topic, "dead_lettered").inc()
            return True
        except Exception as error:
            if _transient(error):
                self.metrics.failures.labels(name, record.topic, "transient").inc()
                # The database is busy or away (e.g. a transaction a killed instance left open
                # holds this document until the server expires it): wait and retry, without
                # counting it against the message.
                waits = self._waits.get(where, 0) + 1
                self._waits[where] = waits
                pause = min(TRANSIENT_PAUSE_MAX_S, 0.25 * 2 ** min(waits, 6))
                log.warning("%s: %s busy (%s); retry %d in %.1fs", name, where, error, waits, pause)
                await asyncio.sleep(pause)
                return False
            self.metrics.failures.labels(name, record.topic, "error").inc()
            attempts = self._attempts.get(where, 0) + 1
            if attempts >= MAX_ATTEMPTS:
                self._attempts.pop(where, None)
                log.exception("%s: giving up on %s after %d attempts", name, where, attempts)
                await self._dead_letter(
                    record, f"failed {attempts} times: {type(error).__name__}: {error}", message.body
                )
                self.metrics.messages.labels(name, record.topic, "dead_lettered").inc()
                return True
            self._attempts[where] = attempts
            log.warning("%s: attempt %d on %s failed (%s); will retry", name, attempts, where, error)
            await asyncio.sleep(RETRY_PAUSE_S * attempts)
            return False  # the consumer seeks back and the message comes again
        self._attempts.pop(where, None)
        self._waits.pop(where, None)
        self.metrics.messages.labels(name, record.topic, outcome).inc()
        self.metrics.handler_seconds.labels(name, record.topic).observe(time.perf_counter() - started)
        return True

    async def _process(self, body: bytes, handler: Handler, only: tuple[type[Event], ...] | None) -> str:
        """Process one message; returns what happened: processed, duplicate or ignored."""
        try:
            envelope = Envelope.model_validate_json(body)
        except pydantic.ValidationError as error:
            raise PoisonMessage(f"invalid envelope: {_describe(error)}") from error
        try:
            event = envelope.open()
        except UnknownEventType as error:
            raise PoisonMessage(str(error)) from error
        except pydantic.ValidationError as error:
            raise PoisonMessage(
                f"invalid {envelope.type} v{envelope.schema_version}: {_describe(error, 'data.')}"
            ) from error
        if only is not None and not isinstance(event, only):
            return "ignored"

        with log_context(
            correlation_id=envelope.correlation_id, event_id=envelope.event_id, event_type=envelope.type
        ):
            return await self._process_once(envelope, event, handler)

    async def _process_once(self, envelope: Envelope, event: Event, handler: Handler) -> str:
        inbox = self.db["processed_events"]
        if await inbox.find_one({"_id": envelope.event_id}, {"_id": 1}):
            log.info("skipped: already processed")
            return "duplicate"

        async def work(uow: UnitOfWork) -> None:
            await inbox.insert_one(
                {"_id": envelope.event_id, "type": envelope.type, "at": datetime.now(UTC)},
                session=uow.session,
            )
            await handler(event, envelope, uow)

        try:
            await self.transact(work, envelope.correlation_id)
        except (DuplicateKeyError, PyMongoError):
            # Another instance processed it at the same moment: nothing left to do.
            if await inbox.find_one({"_id": envelope.event_id}, {"_id": 1}):
                return "duplicate"
            raise
        log.info("processed")
        return "processed"

    async def _dead_letter(self, record: Any, reason: str, body: bytes) -> None:
        dead_letter_id = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"{self.service}/{record.topic}/{record.partition}/{record.offset}"
            )
        )
        payload = body.decode("utf-8", errors="replace")
        log.error(
            "dead letter %s from %s[%d]@%d: %s",
            dead_letter_id,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )

        async def work(uow: UnitOfWork) -> None:
            await uow.db["dead_letters"].update_one(
                {"_id": dead_letter_id},
                {
                    "$setOnInsert": {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": reason,
                        "payload": payload,
                        "at": datetime.now(UTC),
                    }
                },
                upsert=True,
                session=uow.session,
            )
            uow.emit(
                MessageDeadLettered(
                    dead_letter_id=dead_letter_id,
                    service=self.service,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                    payload=payload[:10_000],
                ),
                event_id=dead_letter_id,
            )

        await self.transact(work)

    async def redrive(self, dead_letter_id: str) -> Document:
        """Process a dead letter again, through the consumer of its topic (after its cause was
        fixed). Returns the dead letter, marked re-driven with the outcome. Raises LookupError
        (no such dead letter), PoisonMessage (still unreadable) or StillFailing (the handler
        failed again); the dead letter then stays as it was. Re-driving twice does nothing more."""
        letters = self.db["dead_letters"]
        letter = await letters.find_one({"_id": dead_letter_id})
        if letter is None:
            raise LookupError(dead_letter_id)
        if letter.get("redriven_at") is not None:
            return letter
        consumer = next((c for c in self._consumers.values() if letter["topic"] in c.topics), None)
        if consumer is None:
            raise PoisonMessage(f"{self.service} no longer consumes {letter['topic']}")
        try:
            async with self._processing:
                outcome = await self._process(letter["payload"].encode(), consumer.handler, consumer.only)
        except PoisonMessage:
            raise
        except Exception as error:
            raise StillFailing(f"{type(error).__name__}: {error}") from error
        log.info("re-drove dead letter %s: %s", dead_letter_id, outcome)
        marked: Document | None = await letters.find_one_and_update(
            {"_id": dead_letter_id},
            {"$set": {"redriven_at": datetime.now(UTC), "redrive_outcome": outcome}},
            return_document=ReturnDocument.AFTER,
        )
        return marked or letter

    async def replay(
        self,
        topic_names: Iterable[str],
        handler: Handler,
        *,
        forget: Iterable[str],
        only: tuple[type[Event], ...] | None = None,
    ) -> int:
        """Rebuild a read model from the topics: empty the `forget` collections and the inbox,
        then feed every event still on the topics, oldest first, through `handler`.

        Live consumers wait meanwhile; what they receive afterwards is recognised by the
        rebuilt inbox. Events the broker no longer keeps (retention) cannot come back.
        """
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        replayed = 0
        try:
            async with self._processing:
                for name in [*forget, "processed_events"]:
                    await self.db[name].delete_many({})
                partitions = [
                    TopicPartition(t, p)
                    for t in topic_names
                    for p in sorted(consumer.partitions_for_topic(t) or [])
                ]
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                ends = await consumer.end_offsets(partitions)

                async def behind() -> bool:
                    return any([await consumer.position(tp) < ends[tp] for tp in partitions])

                while await behind():
                    batch = await consumer.getmany(timeout_ms=500)
                    for record in sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp):
                        if record.offset >= ends[TopicPartition(record.topic, record.partition)]:
                            continue
                        try:
                            await self._process(record.value, handler, only)
                        except PoisonMessage:
                            continue  # it was dead-lettered when it first arrived
                        replayed += 1
        finally:
            await consumer.stop()
        log.info("replayed %d events into a fresh read model", replayed)
        return replayed

    async def _end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self._probe is None:
            timeouts = self.settings.kafka_timeouts_ms()
            self._probe = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=timeouts.request_timeout_ms,
                metadata_max_age_ms=timeouts.metadata_max_age_ms,
            )
            await self._probe.start()
        try:
            ends: dict[TopicPartition, int] = await self._probe.end_offsets(partitions)
        except BaseException:
            # After a broker restart the probe's connections can stay broken: start afresh next time.
            probe, self._probe = self._probe, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_SECONDS):
                    await probe.stop()
            raise
        return ends

    # -- health and metrics ---------------------------------------------------

    async def refresh_metrics(self) -> None:
        """Bring the gauges up to date (at each scrape): consumer lag per assigned partition,
        the outbox backlog, the dead letters. Each part is skipped if it cannot answer in time.
        Only partitions assigned now are reported, so the sum over instances is the group's lag."""
        self.metrics.lag.clear()
        for subscriber in self._subscribers.values():
            consumer = subscriber.consumer
            if consumer is None:
                continue
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                try:
                    async with asyncio.timeout(2):
                        committed = await consumer.committed(tp)
                except Exception:  # noqa: BLE001 - the coordinator is away: not reported this time
                    continue
                if end is not None:
                    lag = max(0, end - (committed or 0))
                    self.metrics.lag.labels(self.settings.consumer_group, tp.topic, str(tp.partition)).set(
                        lag
                    )
        if self._client is None or self._outbox is None:
            return
        try:
            async with asyncio.timeout(2):
                self.metrics.outbox_pending.set(await self._outbox.pending())
                self.metrics.dead_letters.set(await self.db["dead_letters"].estimated_document_count())
        except Exception:  # noqa: BLE001 - the database is away; /readyz says so
            log.warning("metrics: the database did not answer; gauges left as they were")

    async def readiness(self) -> dict[str, Any]:
        """What /readyz reports: each check and whether all passed."""
        checks: dict[str, Any] = {}
        try:
            assert self._client is not None
            async with asyncio.timeout(2):
                await self._client.admin.command("ping")
            checks["database"] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"unreachable: {type(error).__name__}"
        try:
            ok = await self.broker.ping(timeout=2)
            checks["broker"] = "ok" if ok else "unreachable"
        except Exception as error:  # noqa: BLE001
            checks["broker"] = f"unreachable: {type(error).__name__}"
        checks["consumers"] = {
            name: ("assigned " + ",".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in listener.assigned)))
            if listener.joined
            else "joining"
            for name, listener in self._listeners.items()
        }
        ready = (
            checks["database"] == "ok"
            and checks["broker"] == "ok"
            and all(listener.joined for listener in self._listeners.values())
        )
        if self._outbox is not None:
            checks["outbox_pending"] = await self._outbox.pending() if checks["database"] == "ok" else None
            checks["broker_losses_recovered"] = self._outbox.losses
        return {"ready": ready, "service": self.service, "checks": checks}


def _describe(error: pydantic.ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    where = f"{prefix}{where}" if where else "body"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _transient(error: BaseException) -> bool:
    """A database error that says "not now" rather than "never": a write conflict, a
    transaction to retry, a lost or not yet found server."""
    if isinstance(error, ConnectionFailure):  # includes AutoReconnect, NetworkTimeout, ServerSelectionTimeout
        return True
    if isinstance(error, PyMongoError) and error.has_error_label("TransientTransactionError"):
        return True
    return isinstance(error, OperationFailure) and error.code in (
        112,
        251,
    )  # WriteConflict, NoSuchTransaction
