"""One service's connection to the platform: database, broker, consumers, outbox, health.

`Runtime` is built from settings in the service's app factory (never at import time) and puts
together the parts, each in a module of its own:

- `unit_of_work`: transactions whose collections are bound to their session, with the outbox;
- `pipeline`: what happens to one message (parse, route, dedupe, handle, retry, dead-letter);
- `consumer`: the Kafka consumer, partitions processed side by side, offsets committed after;
- `dead_letters`: messages set aside, and re-driving them;
- `replay`: rebuilding a read model from the topics, and the broker's end offsets;
- `outbox`: publishing what units of work emitted, and noticing a broker that lost it;
- `health`: /readyz and the metrics.

HTTP routes and consumers change state through `transact()` (or `unit_of_work()`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from c2f_shared.events import Event
from c2f_shared.service import health, sessions, tracing
from c2f_shared.service.consumer import Consumer
from c2f_shared.service.dead_letters import DeadLetters
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.pipeline import Gate, Handlers, Pipeline, RetryPolicy, Where
from c2f_shared.service.replay import OffsetProbe, replay
from c2f_shared.service.settings import ServiceSettings
from c2f_shared.service.unit_of_work import Transactions, UnitOfWork

log = logging.getLogger(__name__)

Document = dict[str, Any]
T = TypeVar("T")

SHUTDOWN_SECONDS = 10.0  # longest wait for the broker or the database to close
# How often the outbox checks that the broker still holds what it published (see Outbox), when
# `broker_loss_watch` is on.
LOSS_CHECK_S = {"fast": 2.0, "standard": 30.0}


class Runtime:
    def __init__(self, settings: ServiceSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        timeouts = settings.kafka_timeouts_ms()
        self.metrics = Metrics()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id=f"c2f-{service}",
            acks="all",
            request_timeout_ms=timeouts.request_timeout_ms,
            metadata_max_age_ms=timeouts.metadata_max_age_ms,
            logger=logging.getLogger("c2f.broker"),
            middlewares=_broker_middlewares(service, settings, self.metrics),
        )
        self.consumers: list[Consumer] = []
        self._gate = Gate()  # a replay holds it alone; messages share it
        self._probe = OffsetProbe(settings)
        self._client: AsyncMongoClient[Document] | None = None
        self._outbox: Outbox | None = None
        self._transactions: Transactions | None = None
        self._dead_letters: DeadLetters | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._on_start: list[Callable[[Runtime], Awaitable[None]]] = []
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = []

    # -- wiring ---------------------------------------------------------------

    @property
    def db(self) -> AsyncDatabase[Document]:
        """The service's database, outside any transaction (reads, indexes, single writes)."""
        if self._client is None:
            raise RuntimeError("runtime not started")
        return self._client[self.settings.mongo_db]

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("runtime not started")
        return self._outbox

    @property
    def transactions(self) -> Transactions:
        if self._transactions is None:
            raise RuntimeError("runtime not started")
        return self._transactions

    @property
    def dead_letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise RuntimeError("runtime not started")
        return self._dead_letters

    @property
    def gate(self) -> Gate:
        """Shared by the messages being handled; held alone by an erasure or a replay. Work
        outside the consumers that must not run alongside those takes its shared side."""
        return self._gate

    def on_start(self, hook: Callable[[Runtime], Awaitable[None]]) -> None:
        """Run `hook` once the database is connected, before consumers start."""
        self._on_start.append(hook)

    def background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop` for the life of the service, after consumers start."""
        self._background.append(loop)

    def consume(
        self,
        handlers: Handlers,
        *,
        name: str,
        topics: Iterable[str] | None = None,
        one_at_a_time: bool = False,
    ) -> None:
        """Take the events `handlers` names, each with its handler, in this service's consumer
        group, from the topics they are published on (or `topics`). Offsets are committed only after the
        handler's unit of work commits (at-least-once); a redelivered event is recognised by its
        id and skipped; other events on those topics are acknowledged without a transaction.
        `one_at_a_time`: the partitions' lanes take turns (see `Pipeline`)."""
        pipeline = Pipeline(handlers, self, self._gate, topics, one_at_a_time=one_at_a_time)
        policy = RetryPolicy(name, self.metrics, self._dead_letter)
        self.consumers.append(Consumer(name, self.service, self.broker, self.settings, pipeline, policy))

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
        sessions.bound(self._client, self.settings.transactions_at_once)
        self._outbox = Outbox(
            self.db,
            self.broker,
            watch=self._probe.end_offsets if self.settings.broker_loss_watch else None,
            keep=self.settings.outbox_keep(),
        )
        self._transactions = Transactions(self._client, self.db, self._outbox, self.service)
        self._dead_letters = DeadLetters(
            self.service, self.db, self._transactions, lambda: [c.pipeline for c in self.consumers]
        )
        await self._outbox.ensure_indexes()
        await self._dead_letters.ensure_indexes()
        for hook in self._on_start:
            await hook(self)
        await self.broker.start()
        # A new broker (the embedded one after a restart) gets what the outbox keeps again
        # before anything new, and before the consumers start reading.
        await self._outbox.reconcile()
        self._tasks = [asyncio.create_task(self._outbox.relay_forever(), name="outbox-relay")]
        if self.settings.broker_loss_watch:
            every = LOSS_CHECK_S[self.settings.kafka_timeouts]
            self._tasks.append(
                asyncio.create_task(self._outbox.watch_for_loss(every), name="broker-loss-watch")
            )
        for consumer in self.consumers:
            self._tasks += consumer.background()
        self._tasks += [asyncio.create_task(loop()) for loop in self._background]
        try:
            yield
        finally:
            await self._shut_down()

    async def _shut_down(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=SHUTDOWN_SECONDS)
            for task in stuck:
                log.warning(
                    "task %s did not stop within %s s; left behind", task.get_name(), SHUTDOWN_SECONDS
                )
        for consumer in self.consumers:
            await _bounded("the consumer's lanes", consumer.stop())
        # Shutdown is bounded: a send still in flight is abandoned, not waited for (the outbox has
        # not marked it published, so the next start sends it again).
        await _bounded("broker", self.broker.stop())
        await _bounded("offset probe", self._probe.stop())
        if self._client is not None:
            await _bounded("database", self._client.close())
        self._client = None
        tracing.flush()

    # -- state changes --------------------------------------------------------

    def unit_of_work(self, correlation_id: str | None = None) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction, tried once; the events emitted in it go to the outbox in the same commit."""
        return self.transactions.unit_of_work(correlation_id)

    async def transact(
        self, work: Callable[[UnitOfWork], Awaitable[T]], correlation_id: str | None = None
    ) -> T:
        """Run `work` in a unit of work, again from the start if the transaction collided with a
        concurrent one."""
        return await self.transactions.transact(work, correlation_id)

    async def replay(self, *, forget: Iterable[str]) -> int:
        """Rebuild the read model the `forget` collections hold from the topics this service
        consumes (see replay.replay)."""
        (consumer,) = self.consumers
        return await replay(self.settings, self.db, self._gate, consumer.pipeline, forget)

    async def _dead_letter(self, where: Where, reason: str, body: bytes) -> None:
        await self.dead_letters.record(where, reason, body)

    # -- health and metrics ---------------------------------------------------

    async def refresh_metrics(self) -> None:
        await health.refresh_metrics(
            self.metrics, self.settings.consumer_group, self.consumers, self._outbox, self._dead_letters
        )

    async def readiness(self) -> dict[str, Any]:
        """What /readyz reports: each check and whether all passed."""
        return await health.readiness(self.service, self._client, self.broker, self.consumers, self._outbox)


def _broker_middlewares(service: str, settings: ServiceSettings, metrics: Metrics) -> list[Any]:
    """FastStream's Prometheus metrics of what the broker sends and receives (in the service's
    registry), and, when traces are on, its OpenTelemetry spans of each record published."""
    middlewares: list[Any] = [KafkaPrometheusMiddleware(registry=metrics.registry, app_name=f"c2f-{service}")]
    provider = tracing.configure_tracing(service, settings.traces, settings.traces_file)
    if provider is not None:
        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=provider))
    return middlewares


async def _bounded(what: str, closing: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(SHUTDOWN_SECONDS):
            await closing
    except TimeoutError:
        log.warning("closing the %s took over %s s; left behind", what, SHUTDOWN_SECONDS)
