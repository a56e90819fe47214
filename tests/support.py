"""Helpers for tests that wait on real servers: conditions, mailboxes, committed offsets."""

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, TypeVar, overload
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.controller import Controller
from pymongo import monitoring

from c2f_cli.mail import read_mail

if TYPE_CHECKING:
    from c2f_cli.config import StackConfig
    from c2f_cli.stack import Stack
    from c2f_shared.service import ServiceSettings

S = TypeVar("S", bound="ServiceSettings")

__all__ = [
    "Statements",
    "as_operator",
    "b2b_event",
    "committed_offsets",
    "eventually",
    "first_on_topic",
    "isolated_settings",
    "read_mail",
    "recipients",
    "settled",
]


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 30.0) -> None:
    """Wait until `check()` holds (a condition, not a fixed sleep)."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.05)


def recipients(messages: Iterable[EmailMessage]) -> list[str]:
    return sorted(addr.addr_spec for m in messages for addr in m["To"].addresses)


async def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Offsets `group` has committed (-1 where it has committed nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: (await consumer.committed(tp)) or -1 for tp in partitions}
    finally:
        await consumer.stop()


def as_operator(stack: "Stack", service: str = "registration") -> httpx.AsyncClient:
    """An HTTP client for `service`, signed in with the stack's operator token."""
    return httpx.AsyncClient(
        base_url=stack.config.service_url(service),
        headers={"Authorization": f"Bearer {stack.config.operator_token()}"},
        timeout=30,
    )


async def settled(config: "StackConfig") -> bool:
    """Everything published has been consumed: every outbox and the mail queue are empty,
    and every consumer group has committed up to the end of each topic it reads."""
    from aiokafka import AIOKafkaConsumer as Consumer

    from c2f_cli.config import SERVICES
    from c2f_shared.service.replay import exact_end_offsets

    groups: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name in SERVICES:
            ready = (await client.get(f"{config.service_url(name)}/readyz")).json()
            if not ready["ready"] or ready["checks"]["outbox_pending"]:
                return False
            consumers = [str(v) for v in ready["checks"]["consumers"].values()]
            if not all("[" in held for held in consumers):
                # Joining, or in a rebalance (a member died): its partitions were taken away
                # for now, and the topics they belong to cannot be checked below.
                return False
            assigned = " ".join(consumers)
            groups[f"c2f-{name}"] = {
                t.split("[")[0] for t in assigned.replace("assigned ", "").split(",") if "[" in t
            }
        operator = {"Authorization": f"Bearer {config.operator_token()}"}
        queue = (
            await client.get(f"{config.service_url('notifications')}/outgoing/summary", headers=operator)
        ).json()
        if queue["pending"] or queue["sending"] or queue["timers_due_soon"]:
            return False
    probe = Consumer(bootstrap_servers=config.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await probe.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in set().union(*groups.values())
            for p in probe.partitions_for_topic(t) or []
        ]
        # As a fetch reports them: the embedded broker lists them short after a batch.
        ends = await exact_end_offsets(probe, partitions)
    finally:
        await probe.stop()
    for group, its_topics in groups.items():
        mine = [tp for tp in partitions if tp.topic in its_topics]
        committed = await committed_offsets(config.kafka_bootstrap, group, mine)
        if any(committed[tp] < ends[tp] and ends[tp] > 0 for tp in mine):
            return False
    return True


async def first_on_topic(bootstrap: str, topic: str, matches: Callable[[Any], bool]) -> Any:
    """The first record on `topic`, from the beginning, for which `matches(record)` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for record in (r for rs in batch.values() for r in rs):
                if matches(record):
                    return record
    finally:
        await consumer.stop()


@overload
def isolated_settings(infra: "Stack", name: str) -> "ServiceSettings": ...


@overload
def isolated_settings(infra: "Stack", name: str, kind: "type[S]", **fields: Any) -> "S": ...


def isolated_settings(infra: "Stack", name: str, kind: Any = None, **fields: Any) -> Any:
    """Settings (`kind`, ServiceSettings by default) for a test's own runtime or app: the shared
    servers, a database and consumer group of its own, and `fields`."""
    from c2f_shared.service import ServiceSettings

    suffix = uuid.uuid4().hex[:10]
    return (kind or ServiceSettings)(
        kafka_bootstrap=infra.config.kafka_bootstrap,
        mongo_uri=infra.config.scratch_mongo_uri,
        mongo_db=f"{name}_{suffix}",
        consumer_group=f"{name}-{suffix}",
        **fields,
    )


def of_kind(messages: Iterable[EmailMessage], kind: str) -> list[EmailMessage]:
    """The e-mails of one kind (notifications label each with X-C2F-Kind)."""
    return [m for m in messages if m["X-C2F-Kind"] == kind]


def text_of(message: EmailMessage) -> str:
    """The plain-text part of an e-mail."""
    part = message.get_body(("plain",))
    assert part is not None, "no plain-text part"
    text: str = part.get_content()
    return text


def b2b_event(
    host_cluster_id: str,
    name: str,
    city: str,
    country: str,
    timezone: str,
    *,
    days_ahead: int = 30,
    tables: int | None = None,
) -> dict[str, Any]:
    """The body of a B2B day (8:00 to 13:00 at the venue, `days_ahead` from today), with a
    meetings plan of 30-minute slots from 9:00 to 12:00 at `tables` tables if given."""
    zone = ZoneInfo(timezone)
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).date()
    body: dict[str, Any] = {
        "name": name,
        "kind": "b2b",
        "host_cluster_id": host_cluster_id,
        "city": city,
        "country": country,
        "venue_timezone": timezone,
        "starts_at": datetime.combine(day, time(8), zone).isoformat(),
        "ends_at": datetime.combine(day, time(13), zone).isoformat(),
    }
    if tables is not None:
        plan = {"days": [day.isoformat()], "day_start": "09:00", "day_end": "12:00", "slot_minutes": 30}
        body["meetings"] = {**plan, "tables": tables}
    return body


@contextmanager
def smtp_server(handler: object, port: int) -> Iterator[None]:
    """An aiosmtpd server with `handler` on 127.0.0.1:`port`, for the time of the block."""
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


class Statements(monitoring.CommandListener):
    """The commands a PyMongo client sends, as (command, collection): give it to the client
    as an event listener."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
