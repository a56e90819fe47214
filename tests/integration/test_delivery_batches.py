"""Notifications' delivery under load: several instances, each with several senders and
claiming batches, send every mail exactly once, keep each message's correlation id on its
NotificationSent, reuse their SMTP connections, and open new ones when the server drops them.

The SMTP server is the test's own aiosmtpd on a free loopback port; each delivery loop runs on
a Runtime of its own, the instances sharing one database, on the session's broker and database.
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any

import pytest
from fastapi import FastAPI

from c2f_cli.processes import free_port
from c2f_cli.stack import Stack
from c2f_notifications import delivery as delivery_module
from c2f_notifications import outgoing
from c2f_notifications.config import Settings
from c2f_notifications.delivery import Delivery
from c2f_notifications.store import OUTGOING
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.unit_of_work import Emitted
from tests.integration.test_delivery_backoff import a_scene, delivering, key, notification_settings
from tests.support import eventually, smtp_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Sink:
    """Keeps every mail and the client connection (peer address) it came over."""

    received: list[tuple[Any, EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=default).parsebytes(envelope.original_content or envelope.content)
        assert isinstance(message, EmailMessage)
        self.received.append((session.peer, message))
        return "250 2.0.0 OK"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for _, m in self.received]

    def connections(self) -> int:
        return len({peer for peer, _ in self.received})


async def queue_each(runtime: Runtime, delivery: Delivery, event_id: str, ids: list[str]) -> dict[str, str]:
    """One confirmation per participant, each queued by a transaction (and correlation id) of its own."""
    correlation = {}
    for pid in ids:
        correlation[pid] = f"corr-{uuid.uuid4().hex[:8]}"

        async def work(uow: UnitOfWork, pid: str = pid) -> None:
            assert await outgoing.queue(
                uow, "registration_confirmed", pid, pid, {"event_id": event_id}, uow.correlation_id
            )

        await runtime.transact(work, correlation[pid])
        delivery.wake()
    return correlation


@asynccontextmanager
async def instances(settings: Settings, count: int) -> AsyncIterator[list[tuple[Runtime, Delivery]]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(delivering(settings)) for _ in range(count)]


async def test_two_instances_with_several_senders_send_each_mail_once_over_kept_connections(
    infra: Stack,
) -> None:
    handler = Sink()
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=3, delivery_batch=5)
    with smtp_server(handler, port):
        async with instances(settings, 2) as running:
            runtime, delivery = running[0]
            event_id, emails = await a_scene(runtime, 40)
            people = list(emails)
            correlation = await queue_each(runtime, delivery, event_id, people)
            for _, other in running[1:]:
                other.wake()

            async def all_sent() -> bool:
                return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == len(people)

            await eventually(all_sent, within=30)
            await asyncio.sleep(0.3)  # room for a (wrong) second send to show up
            docs = {d["_id"]: d for d in await runtime.db[OUTGOING].find().to_list(None)}
            outbox = await runtime.db["outbox"].find({"type": "NotificationSent"}).to_list(None)

    ids = handler.message_ids()
    assert len(ids) == len(people) and len(set(ids)) == len(ids), Counter(ids)
    assert sorted(a.addr_spec for _, m in handler.received for a in m["To"].addresses) == sorted(
        emails.values()
    )
    # Kept connections: at most one per sender (2 instances × 3), not one per mail.
    assert handler.connections() <= 6, handler.connections()
    for pid in people:
        doc = docs[key(pid)]
        assert doc["status"] == "sent" and doc["attempts"] == 1 and "claim" not in doc
        assert [t["result"] for t in doc["tries"]] == ["sent"]
    # One NotificationSent per mail, each with its own message's correlation id.
    assert len(outbox) == len(people)
    assert sorted(o["correlation_id"] for o in outbox) == sorted(correlation.values())


async def test_a_dropped_connection_is_opened_again_and_nothing_is_sent_twice(infra: Stack) -> None:
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=2, delivery_batch=4, retry_base_s=0.1)
    first, second = Sink(), Sink()
    async with delivering(settings) as (runtime, delivery):
        event_id, emails = await a_scene(runtime, 12)
        people = list(emails)

        async def sent(count: int) -> bool:
            return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == count

        with smtp_server(first, port):
            await queue_each(runtime, delivery, event_id, people[:6])
            await eventually(lambda: sent(6), within=20)
        # The server went away (the senders' kept connections with it) and came back.
        with smtp_server(second, port):
            await queue_each(runtime, delivery, event_id, people[6:])
            await eventually(lambda: sent(12), within=20)
            await asyncio.sleep(0.3)
        docs = await runtime.db[OUTGOING].find().to_list(None)

    ids = first.message_ids() + second.message_ids()
    assert len(ids) == len(people) and len(set(ids)) == len(ids), Counter(ids)
    assert len(first.received) == 6 and len(second.received) == 6
    for doc in docs:
        results = [t["result"] for t in doc["tries"]]
        assert results[-1] == "sent" and results.count("sent") == 1, results


async def test_a_queue_is_caught_up_lane_by_lane_and_nothing_is_left_behind(infra: Stack) -> None:
    """Catching up on a queue, claims read one lane of it at a time (outgoing.LANES); every
    message goes once, those queued before there were lanes too (they go in the first)."""
    handler = Sink()
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=2, delivery_batch=3)
    runtime = Runtime(settings, service="notifications")
    async with runtime.lifespan(FastAPI()):
        event_id, emails = await a_scene(runtime, 30)
        people = list(emails)
        await queue_each(runtime, Delivery(runtime, settings), event_id, people)
        older = [key(pid) for pid in people[:6]]
        await runtime.db[OUTGOING].update_many({"_id": {"$in": older}}, {"$unset": {"lane": ""}})
        lanes = {d["lane"] async for d in runtime.db[OUTGOING].find({"lane": {"$exists": True}})}
    assert len(lanes) > 3, lanes  # spread over the lanes
    with smtp_server(handler, port):
        async with delivering(settings) as (runtime, _):

            async def all_sent() -> bool:
                return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == len(people)

            await eventually(all_sent, within=30)
    ids = handler.message_ids()
    assert len(ids) == len(people) and len(set(ids)) == len(ids), Counter(ids)


async def test_killed_between_the_fact_and_the_mark_the_mail_is_not_sent_again_and_is_counted_once(
    infra: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sent mail is recorded in two writes: its NotificationSent into the outbox, then the
    message as sent. An instance killed between them leaves the fact stored and the message
    claimed: once the lease runs out, the claim finds the fact and marks the message sent
    without sending it again, and the fact is published once, so reporting counts it once."""
    monkeypatch.setattr(delivery_module, "LEASE", timedelta(seconds=1.5))
    monkeypatch.setattr(delivery_module, "LEASE_MARGIN", timedelta(seconds=0.5))
    handler = Sink()
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=1, delivery_batch=1)
    with smtp_server(handler, port):
        async with delivering(settings) as (runtime, delivery):
            store = runtime.outbox.add_now
            killed: list[str] = []

            async def stored_then_killed(emitted: list[Emitted]) -> None:
                await store(emitted)
                if not killed:  # the first time: the process dies before the second write
                    killed.append(emitted[0].envelope.event_id)
                    raise RuntimeError("killed")

            monkeypatch.setattr(runtime.outbox, "add_now", stored_then_killed)
            event_id, emails = await a_scene(runtime, 1)
            [pid] = emails
            await queue_each(runtime, delivery, event_id, [pid])

            async def sent() -> bool:
                return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == 1

            await eventually(sent, within=20)
            facts = await runtime.db["outbox"].find({"type": "NotificationSent"}).to_list(None)

            async def published() -> bool:
                row = await runtime.db["outbox"].find_one({"_id": killed[0]})
                return bool(row and row["published"])

            await eventually(published, within=10)
            doc = await runtime.db[OUTGOING].find_one({"_id": key(pid)})

    assert len(handler.received) == 1, "its fact was stored: the mail is not sent again"
    assert [f["_id"] for f in facts] == killed, "its NotificationSent is stored once"
    assert doc is not None and doc["status"] == "sent" and "claim" not in doc
    assert [t["result"] for t in doc["tries"]] == ["sent (counted before a restart)"]


@dataclass
class SlowSink(Sink):
    """Takes half a second over each mail."""

    started: int = 0  # mails whose DATA the server began to take

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.started += 1
        await asyncio.sleep(0.5)
        return await super().handle_DATA(server, session, envelope)


async def test_a_stop_records_the_mails_in_hand_and_gives_back_the_rest(infra: Stack) -> None:
    """A normal stop (SIGTERM, Ctrl-C) while the senders have mails in hand: each sender finishes
    its mail and records it, what was claimed but not begun is pending again at once, and an
    instance started afterwards sends the rest: every mail exactly once."""
    handler = SlowSink()
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=2, delivery_batch=10)
    runtime = Runtime(settings, service="notifications")
    delivery = Delivery(runtime, settings)
    with smtp_server(handler, port):
        async with runtime.lifespan(FastAPI()):
            await delivery.ensure_indexes()
            loop = asyncio.create_task(delivery.run_forever(idle_poll=0.05))
            event_id, emails = await a_scene(runtime, 6)
            await queue_each(runtime, delivery, event_id, list(emails))
            await eventually(lambda: handler.started >= 1, within=20)
            loop.cancel()  # as the runtime does when the service stops
            await asyncio.gather(loop, return_exceptions=True)
            docs = await runtime.db[OUTGOING].find().to_list(None)
        statuses = Counter(d["status"] for d in docs)
        assert statuses["sending"] == 0, statuses
        assert statuses["sent"] == len(handler.received) >= 1, (statuses, len(handler.received))
        assert statuses["pending"] == len(docs) - statuses["sent"], statuses
        assert all("claim" not in d for d in docs)
        async with delivering(settings) as (again, _):

            async def all_sent() -> bool:
                return await again.db[OUTGOING].count_documents({"status": "sent"}) == len(emails)

            await eventually(all_sent, within=30)
    ids = handler.message_ids()
    assert len(ids) == len(emails) and len(set(ids)) == len(ids), Counter(ids)


@dataclass
class LoggingSink(Sink):
    """Notes when each envelope began (MAIL FROM) and when each content arrived (DATA)."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self.steps.append(("mail", time.monotonic()))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.steps.append(("data", time.monotonic()))
        return await super().handle_DATA(server, session, envelope)


async def test_the_next_mail_is_begun_while_the_last_is_recorded_and_handed_over_only_after(
    infra: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender writes the next mail and opens its envelope while the last one is being
    recorded (the speed), but hands over its content only once the last one's NotificationSent
    is stored: a crash still doubles at most the one mail in hand."""
    handler = LoggingSink()
    port = free_port()
    settings = notification_settings(infra, port, delivery_workers=1, delivery_batch=5)
    recorded: list[float] = []  # when each mail's fact was stored
    with smtp_server(handler, port):
        async with delivering(settings) as (runtime, delivery):
            store = runtime.outbox.add_now

            async def slow_store(emitted: list[Emitted]) -> None:
                await asyncio.sleep(0.3)
                await store(emitted)
                recorded.extend(time.monotonic() for _ in emitted)

            monkeypatch.setattr(runtime.outbox, "add_now", slow_store)
            event_id, emails = await a_scene(runtime, 4)
            await queue_each(runtime, delivery, event_id, list(emails))

            async def all_sent() -> bool:
                return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == len(emails)

            await eventually(all_sent, within=30)

    mails = [at for step, at in handler.steps if step == "mail"]
    contents = [at for step, at in handler.steps if step == "data"]
    assert len(mails) == len(contents) == len(recorded) == 4, handler.steps
    for i in range(1, 4):
        assert contents[i] > recorded[i - 1], f"mail {i}'s content went before mail {i - 1} was recorded"
    begun_early = sum(mails[i] < recorded[i - 1] for i in range(1, 4))
    assert begun_early >= 2, "the next envelope waits for the last mark"  # (a late claim may miss one)
