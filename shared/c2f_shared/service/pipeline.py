"""What happens to one message a consumer receives: parse it, route it to its handler, skip it if
it was processed before, handle it in a unit of work, and when it fails, retry it or set it
aside as a dead letter.

- `Pipeline.process` parses the envelope and the event (an unreadable one is a `PoisonMessage`),
  looks up the handler by the event's type (no handler: "ignored", acknowledged without a
  transaction), and runs it in one unit of work with the inbox record of the event's id, so a
  redelivered event is processed once ("duplicate").
- `RetryPolicy.settle` runs `process` until the message is finished: a database that says "not
  now" (a write conflict, a lost server) is waited for without limit; any other error is retried
  MAX_ATTEMPTS times, then the message becomes a dead letter with the reason; a poison message
  becomes one at once. Nothing is raised: one message never stops a consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import pydantic
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from c2f_shared.envelope import Envelope, UnknownEventType
from c2f_shared.events import EVENT_TYPES, CompanyErased, Event
from c2f_shared.service import tracing
from c2f_shared.service.logs import log_context
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.unit_of_work import DUPLICATE_KEY, UnitOfWork

log = logging.getLogger(__name__)

# A consumer's handler for one type of event: the typed event, its envelope, and the unit of work
# to change state in.
Handler = Callable[[Any, Envelope, UnitOfWork], Awaitable[None]]
# What a service consumes: each event type it takes and its handler. The consumer subscribes to
# the topics these types are published on.
Handlers = Mapping[type[Event], Handler]

INBOX = "processed_events"
T = TypeVar("T")

# A message that fails this many times in a row with an unexpected error is set aside as a dead
# letter, so one bad message never stops a consumer.
MAX_ATTEMPTS = 5
RETRY_PAUSE_S = 0.5
# A message the database cannot take yet is retried without counting against it, at most this
# far apart.
TRANSIENT_PAUSE_MAX_S = 5.0


class PoisonMessage(Exception):
    """The message can never be processed; it goes to the dead letters with this reason."""


class BatchFailed(Exception):
    """A batch's unit of work failed (nothing of it was stored): at message `at` (its handler
    raised `error`), or, when `at` is None, outside any one handler (e.g. the commit)."""

    def __init__(self, at: int | None, error: Exception) -> None:
        super().__init__(f"batch failed at {at}: {error!r}")
        self.at = at
        self.error = error


def topics_of(handlers: Handlers) -> tuple[str, ...]:
    """The topics a consumer of `handlers` subscribes to."""
    return tuple(sorted({event_type.TOPIC for event_type in handlers}))


# Handled while nothing else is, in a process: what an erasure removes (a company's suggestions,
# messages, meetings) must not be re-created beside it by a fact of another partition handled at
# the same moment, which the erasure's transaction would not see.
ALONE: tuple[type[Event], ...] = (CompanyErased,)


class Store(Protocol):
    """What the pipeline needs of the service's database (the Runtime)."""

    @property
    def db(self) -> Any: ...  # the database outside transactions (the inbox is read there)

    async def transact(
        self, work: Callable[[UnitOfWork], Awaitable[T]], correlation_id: str | None = None
    ) -> T: ...


class Pipeline:
    def __init__(
        self,
        handlers: Handlers,
        store: Store,
        gate: Gate,
        topics: Iterable[str] | None = None,
        *,
        one_at_a_time: bool = False,
    ) -> None:
        """`one_at_a_time`: the lanes of this process take turns, one unit of work at a time,
        each waiting for its turn before its transaction begins (handlers that would write the
        same documents wait instead of colliding and running again; an open transaction never
        waits, which the embedded database reaps after 60 s and can wedge on)."""
        self.handlers = dict(handlers)
        self.topics = tuple(topics) if topics is not None else topics_of(handlers)
        self._store = store
        self._gate = gate
        self._turn: asyncio.Lock | None = asyncio.Lock() if one_at_a_time else None

    async def _transact(self, work: Callable[[UnitOfWork], Awaitable[None]], correlation_id: str) -> None:
        async with self._turn if self._turn is not None else contextlib.nullcontext():
            await self._store.transact(work, correlation_id)

    @staticmethod
    def parse(body: bytes) -> tuple[Envelope, Event]:
        try:
            envelope = Envelope.model_validate_json(body)
        except pydantic.ValidationError as error:
            raise PoisonMessage(f"invalid envelope: {describe(error)}") from error
        try:
            return envelope, envelope.open()
        except UnknownEventType as error:
            raise PoisonMessage(str(error)) from error
        except pydantic.ValidationError as error:
            raise PoisonMessage(
                f"invalid {envelope.type} v{envelope.schema_version}: {describe(error, 'data.')}"
            ) from error

    def ignores(self, event_type: str | None) -> bool:
        """Whether a message whose headers name `event_type` is certainly ignored here: a known
        type this consumer has no handler for. It is acknowledged without being parsed (a
        service's own events come back on topics it reads for other types: registration reads
        `companies` for other instances' erasures). A message without the header, or naming an
        unknown type, is parsed, and set aside when it is unreadable."""
        model = EVENT_TYPES.get(event_type) if event_type is not None else None
        return model is not None and model not in self.handlers

    async def process(self, body: bytes, trace: tracing.Carrier | None = None) -> str:
        """Process one message; returns what happened: processed, duplicate or ignored.
        `trace`: the trace context its headers carry (its handling continues that trace)."""
        envelope, event = self.parse(body)
        async with self._gate.exclusive() if isinstance(event, ALONE) else self._gate.shared():
            return await self._process(envelope, event, trace)

    async def process_alone(self, body: bytes, trace: tracing.Carrier | None = None) -> str:
        """`process`, for the holder of the gate's exclusive side (a replay)."""
        envelope, event = self.parse(body)
        return await self._process(envelope, event, trace)

    async def _process(self, envelope: Envelope, event: Event, trace: tracing.Carrier | None) -> str:
        handler = self.handlers.get(type(event))
        if handler is None:
            return "ignored"
        with (
            log_context(
                correlation_id=envelope.correlation_id, event_id=envelope.event_id, event_type=envelope.type
            ),
            _handling(envelope, trace),
        ):
            return await self._once(envelope, event, handler)

    async def process_batch(
        self, bodies: list[bytes], traces: list[tracing.Carrier] | None = None
    ) -> list[str] | None:
        """Process several messages of one partition, in order, in one unit of work (one inbox
        read, one transaction, one commit); returns each one's outcome. None, with nothing done,
        when they must go one at a time: one of them is unreadable or must be handled alone.
        Raises BatchFailed, with nothing stored, when the unit of work failed."""
        traces = traces or [{}] * len(bodies)
        parsed: list[tuple[Envelope, Event]] = []
        for body in bodies:
            try:
                envelope, event = self.parse(body)
            except PoisonMessage:
                return None
            if isinstance(event, ALONE):
                return None
            parsed.append((envelope, event))
        outcomes = ["ignored"] * len(parsed)
        todo = [
            (i, envelope, event, handler)
            for i, (envelope, event) in enumerate(parsed)
            if (handler := self.handlers.get(type(event))) is not None
        ]
        if not todo:
            return outcomes
        async with self._gate.shared():
            try:
                return await self._batch(todo, outcomes, traces, seen=set())
            except BatchFailed as failed:
                if failed.at is not None or not _duplicate(failed.error):
                    raise
            # The inbox holds some of them (a redelivery): leave those out, handle the others.
            ids = [envelope.event_id for _, envelope, _, _ in todo]
            seen = {d["_id"] async for d in self._store.db[INBOX].find({"_id": {"$in": ids}}, {"_id": 1})}
            return await self._batch(todo, outcomes, traces, seen)

    async def _batch(
        self,
        todo: list[tuple[int, Envelope, Event, Handler]],
        outcomes: list[str],
        traces: list[tracing.Carrier],
        seen: set[str],
    ) -> list[str]:
        """`process_batch`'s unit of work, for the messages whose ids are not in `seen` (the
        ones the inbox holds already). Inserting their ids into the inbox comes first: one
        processed before makes it fail at once, with BatchFailed(None, DuplicateKeyError)."""
        fresh = []
        for i, envelope, event, handler in todo:
            if envelope.event_id in seen:
                outcomes[i] = "duplicate"
                continue
            seen.add(envelope.event_id)
            fresh.append((i, envelope, event, handler))
        if not fresh:
            return outcomes

        running: list[int] = []  # the message whose handler runs

        async def work(uow: UnitOfWork) -> None:
            running.clear()
            uow.batch = [event for _, _, event, _ in fresh]
            now = datetime.now(UTC)
            await uow.db[INBOX].insert_many(
                [{"_id": envelope.event_id, "type": envelope.type, "at": now} for _, envelope, _, _ in fresh]
            )
            for i, envelope, event, handler in fresh:
                running[:] = [i]
                uow.correlation_id = envelope.correlation_id  # what it emits follows from it
                with (
                    log_context(
                        correlation_id=envelope.correlation_id,
                        event_id=envelope.event_id,
                        event_type=envelope.type,
                    ),
                    _handling(envelope, traces[i]),
                ):
                    await handler(event, envelope, uow)
            running.clear()

        try:
            await self._transact(work, fresh[0][1].correlation_id)
        except Exception as error:
            raise BatchFailed(running[0] if running else None, error) from error
        for i, envelope, _, _ in fresh:
            outcomes[i] = "processed"
            with log_context(
                correlation_id=envelope.correlation_id, event_id=envelope.event_id, event_type=envelope.type
            ):
                log.info("processed")
        return outcomes

    async def _once(self, envelope: Envelope, event: Event, handler: Handler) -> str:
        """Handle one message in a unit of work that first inserts its id into the inbox: one
        processed before (or at the same moment, by another instance) fails there, at once."""
        inbox = self._store.db[INBOX]

        async def work(uow: UnitOfWork) -> None:
            uow.batch = [event]
            await uow.db[INBOX].insert_one(
                {"_id": envelope.event_id, "type": envelope.type, "at": datetime.now(UTC)}
            )
            await handler(event, envelope, uow)

        try:
            await self._transact(work, envelope.correlation_id)
        except (DuplicateKeyError, PyMongoError):
            # Processed before, or by another instance at the same moment: nothing left to do.
            if await inbox.find_one({"_id": envelope.event_id}, {"_id": 1}):
                log.info("skipped: already processed")
                return "duplicate"
            raise
        log.info("processed")
        return "processed"


def _duplicate(error: BaseException) -> bool:
    """Whether `error` is a unique key's (an insert of an id the collection holds)."""
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        return any(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", []))
    return isinstance(error, OperationFailure) and error.code == DUPLICATE_KEY


def _handling(envelope: Envelope, trace: tracing.Carrier | None) -> Any:
    """The span of one event's handling, in the trace its record's headers carry on."""
    return tracing.span(
        f"{envelope.type} handle",
        trace,
        kind=tracing.SpanKind.CONSUMER,
        attributes={
            "c2f.event_id": envelope.event_id,
            "c2f.event_type": envelope.type,
            "c2f.correlation_id": envelope.correlation_id,
            "c2f.producer": envelope.producer,
        },
    )


@dataclass(frozen=True)
class Where:
    """A message's place on the broker."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Received:
    """A message taken from the broker: where it was, its body, the trace context its headers
    carry (empty when traces are off), and the event type its `event-type` header names."""

    where: Where
    body: bytes
    trace: tracing.Carrier = field(default_factory=dict)
    event_type: str | None = None


DeadLetterSink = Callable[[Where, str, bytes], Awaitable[None]]


class RetryPolicy:
    def __init__(self, name: str, metrics: Metrics, dead_letter: DeadLetterSink) -> None:
        self._name = name
        self._metrics = metrics
        self._dead_letter = dead_letter

    async def settle(
        self,
        where: Where,
        body: bytes,
        process: Callable[[bytes], Awaitable[str]],
        first_error: Exception | None = None,
    ) -> str:
        """Run `process(body)` until the message is finished with; returns the outcome
        (processed, duplicate, ignored or dead_lettered). `first_error`: how its first attempt
        failed already (in a batch)."""
        attempts = waits = 0
        while True:
            started = time.perf_counter()
            try:
                if first_error is not None:
                    error, first_error = first_error, None
                    raise error
                outcome = await process(body)
            except PoisonMessage as poison:
                self._metrics.failures.labels(self._name, where.topic, "poison").inc()
                if await self._set_aside(where, str(poison), body):
                    return "dead_lettered"
                continue
            except Exception as error:
                if transient(error):
                    # The database is busy or away (e.g. a transaction a killed instance left open
                    # holds this document until the server expires it): wait and retry, without
                    # counting it against the message.
                    self._metrics.failures.labels(self._name, where.topic, "transient").inc()
                    waits += 1
                    pause = min(TRANSIENT_PAUSE_MAX_S, 0.25 * 2 ** min(waits, 6))
                    log.warning("%s: %s busy (%s); retry %d in %.1fs", self._name, where, error, waits, pause)
                    await asyncio.sleep(pause)
                    continue
                self._metrics.failures.labels(self._name, where.topic, "error").inc()
                attempts += 1
                if attempts < MAX_ATTEMPTS:
                    log.warning(
                        "%s: attempt %d on %s failed (%s); will retry", self._name, attempts, where, error
                    )
                    await asyncio.sleep(RETRY_PAUSE_S * attempts)
                    continue
                log.exception("%s: giving up on %s after %d attempts", self._name, where, attempts)
                reason = f"failed {attempts} times: {type(error).__name__}: {error}"
                if await self._set_aside(where, reason, body):
                    return "dead_lettered"
                attempts -= 1  # the dead letter could not be written: try the message once more
                continue
            self._metrics.messages.labels(self._name, where.topic, outcome).inc()
            self._metrics.handler_seconds.labels(self._name, where.topic).observe(
                time.perf_counter() - started
            )
            return outcome

    async def settle_all(self, batch: list[Received], pipeline: Pipeline) -> None:
        """Finish a partition's messages, in order: together in one unit of work when they can
        be, else each on its own (`settle`). When a batch fails in one message's handler, the
        messages before it go again together, and that failure is the first of its attempts.
        Messages of types the pipeline has no handler for are acknowledged first, unread."""
        ignored = [r for r in batch if pipeline.ignores(r.event_type)]
        if ignored:
            for r in ignored:
                self._metrics.messages.labels(self._name, r.where.topic, "ignored").inc()
            batch = [r for r in batch if not pipeline.ignores(r.event_type)]
            if not batch:
                return
        if len(batch) == 1:
            (one,) = batch
            await self.settle(one.where, one.body, partial(pipeline.process, trace=one.trace))
            return
        started = time.perf_counter()
        try:
            outcomes = await pipeline.process_batch([r.body for r in batch], [r.trace for r in batch])
        except BatchFailed as failed:
            log.info("%s: a batch of %d failed at %s (%s)", self._name, len(batch), failed.at, failed.error)
            if failed.at is None:
                outcomes = None
            else:
                if failed.at:
                    await self.settle_all(batch[: failed.at], pipeline)
                at = batch[failed.at]
                process = partial(pipeline.process, trace=at.trace)
                await self.settle(at.where, at.body, process, first_error=failed.error)
                if failed.at + 1 < len(batch):
                    await self.settle_all(batch[failed.at + 1 :], pipeline)
                return
        if outcomes is None:
            for r in batch:
                await self.settle(r.where, r.body, partial(pipeline.process, trace=r.trace))
            return
        each = (time.perf_counter() - started) / len(batch)
        for r, outcome in zip(batch, outcomes, strict=True):
            self._metrics.messages.labels(self._name, r.where.topic, outcome).inc()
            self._metrics.handler_seconds.labels(self._name, r.where.topic).observe(each)

    async def _set_aside(self, where: Where, reason: str, body: bytes) -> bool:
        try:
            await self._dead_letter(where, reason, body)
        except Exception:  # the database is away: the message stays where it is and comes again
            log.exception("%s: could not set %s aside; it will be tried again", self._name, where)
            await asyncio.sleep(RETRY_PAUSE_S)
            return False
        self._metrics.messages.labels(self._name, where.topic, "dead_lettered").inc()
        return True


def describe(error: pydantic.ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    where = f"{prefix}{where}" if where else "body"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def transient(error: BaseException) -> bool:
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


class Gate:
    """Lets messages be processed side by side (shared) unless a replay holds it (exclusive)."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self._sharing = 0
        self._exclusive = False

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._exclusive)
            self._sharing += 1
        try:
            yield
        finally:
            async with self._condition:
                self._sharing -= 1
                self._condition.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # from now on nobody new shares
            await self._condition.wait_for(lambda: self._sharing == 0)
        try:
            yield
        finally:
            async with self._condition:
                self._exclusive = False
                self._condition.notify_all()
