"""Notifications' delivery against an SMTP server that refuses for a while: every mail is
delivered once, the retries follow the exponential backoff with jitter, and a message that
keeps failing is dead-lettered, then re-driven by the operator and delivered once.

The SMTP server is the test's own aiosmtpd on a free loopback port; the delivery loop runs
on a Runtime of its own (its own database) on the session's broker and database.
"""

import asyncio
import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from itertools import pairwise
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from c2f_cli.processes import free_port
from c2f_cli.stack import Stack
from c2f_notifications import api, outgoing
from c2f_notifications.config import Settings
from c2f_notifications.delivery import Delivery
from c2f_notifications.store import EVENTS, OUTGOING, RECIPIENTS
from c2f_shared import topics
from c2f_shared.service import Runtime, UnitOfWork
from tests.support import eventually, first_on_topic, isolated_settings, smtp_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSAL = "451 4.3.0 try again later"
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex
IDLE_POLL = 0.05  # how often the test's delivery loop looks for due messages
SLACK = 0.01  # timestamps are stored to the millisecond


@dataclass
class FlakyServer:
    """An SMTP handler that answers 451 to DATA until `accepting` is set, then keeps the mail."""

    accepting: bool = False
    refused: int = 0
    received: list[tuple[float, EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.accepting:
            self.refused += 1
            return REFUSAL
        message = BytesParser(policy=default).parsebytes(envelope.original_content or envelope.content)
        assert isinstance(message, EmailMessage)
        self.received.append((time.monotonic(), message))
        return "250 2.0.0 OK"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for _, m in self.received]

    def addressees(self) -> list[str]:
        return sorted(a.addr_spec for _, m in self.received for a in m["To"].addresses)


@contextmanager
def flaky_server() -> Iterator[tuple[FlakyServer, int]]:
    handler, port = FlakyServer(), free_port()
    with smtp_server(handler, port):
        yield handler, port


def notification_settings(infra: Stack, smtp_port: int, **overrides: Any) -> Settings:
    base = isolated_settings(infra, "delivery").model_dump()
    values: dict[str, Any] = {
        **base,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_username": None,
        "smtp_password": None,
        "smtp_starttls": False,
        "retry_base_s": 0.2,
        "max_attempts": 8,
        "link_secret": SecretStr("link-" + uuid.uuid4().hex),
        "operator_token": SecretStr(OPERATOR_TOKEN),
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def delivering(settings: Settings) -> AsyncIterator[tuple[Runtime, Delivery]]:
    """A started runtime and its delivery loop, running until the block ends."""
    runtime = Runtime(settings, service="notifications")
    delivery = Delivery(runtime, settings)
    async with runtime.lifespan(FastAPI()):
        await delivery.ensure_indexes()
        loop = asyncio.create_task(delivery.run_forever(idle_poll=IDLE_POLL), name="test-delivery")
        try:
            yield runtime, delivery
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)


async def a_scene(runtime: Runtime, people: int) -> tuple[str, dict[str, str]]:
    """An event and `people` Italian participants, as the consumers would have stored them."""
    event_id = str(uuid.uuid4())
    await runtime.db[EVENTS].insert_one(
        {
            "_id": event_id,
            "name": "Fiera B2B Smart City",
            "kind": "b2b",
            "venue": "Lingotto Fiere",
            "city": "Torino",
            "country": "IT",
            "venue_timezone": "Europe/Rome",
            "starts_at": "2027-05-11T09:00:00+02:00",
            "ends_at": "2027-05-11T17:00:00+02:00",
        }
    )
    emails = {str(uuid.uuid4()): f"giulia.{n}.{uuid.uuid4().hex[:6]}@example.org" for n in range(people)}
    await runtime.db[RECIPIENTS].insert_many(
        [
            {
                "_id": pid,
                "name": f"Giulia Rossi {n}",
                "email": email,
                "language": "it",
                "event_id": event_id,
                "company_id": None,
                "cluster_id": None,
                "consent_share_contact": False,
                "status": "registered",
            }
            for n, (pid, email) in enumerate(emails.items())
        ]
    )
    return event_id, emails


async def queue_confirmations(runtime: Runtime, delivery: Delivery, event_id: str, ids: list[str]) -> None:
    async def work(uow: UnitOfWork) -> None:
        for pid in ids:
            assert await outgoing.queue(uow, "registration_confirmed", pid, pid, {"event_id": event_id})

    await runtime.transact(work, "backoff-test")
    delivery.wake()


def key(pid: str) -> str:
    return outgoing.dedupe_key("registration_confirmed", pid, pid)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_refused_for_a_while_then_accepted_every_mail_once_with_backoff(infra: Stack) -> None:
    with flaky_server() as (server, port):
        settings = notification_settings(infra, port)
        base = settings.retry_base_s
        async with delivering(settings) as (runtime, delivery):
            event_id, emails = await a_scene(runtime, 5)
            people = list(emails)
            await queue_confirmations(runtime, delivery, event_id, people)

            # Refuse until every message has failed three times, then accept.
            async def all_failed_thrice() -> bool:
                docs = await runtime.db[OUTGOING].find({}, {"attempts": 1}).to_list(None)
                return len(docs) == len(people) and all(d["attempts"] >= 3 for d in docs)

            await eventually(all_failed_thrice, within=15)
            server.accepting = True
            switched = time.monotonic()

            async def all_sent() -> bool:
                return await runtime.db[OUTGOING].count_documents({"status": "sent"}) == len(people)

            await eventually(all_sent, within=20)
            await asyncio.sleep(3 * IDLE_POLL)  # room for a (wrong) second send to show up
            docs = {d["_id"]: d for d in await runtime.db[OUTGOING].find().to_list(None)}
            outbox = await runtime.db["outbox"].find({"type": "NotificationSent"}).to_list(None)

    # Every mail arrived exactly once, and only once the server accepted.
    ids = server.message_ids()
    assert len(ids) == len(people) and len(set(ids)) == len(ids), Counter(ids)
    assert server.addressees() == sorted(emails.values())
    assert all(at >= switched for at, _ in server.received)
    for _, mail in server.received:
        assert mail["Content-Language"] == "it"
        assert mail["X-C2F-Kind"] == "registration_confirmed"
        assert mail["Subject"] == "La Sua iscrizione a Fiera B2B Smart City è confermata"
        body = mail.get_body(("plain",))
        assert body is not None and "Torino" in body.get_content()
    assert len(outbox) == len(people)  # one NotificationSent each

    # Each message: failed tries, then one "sent"; the gaps follow the backoff.
    failed_tries = 0
    ratios = []
    for pid in people:
        doc = docs[key(pid)]
        tries = doc["tries"]
        results = [t["result"] for t in tries]
        assert results[-1] == "sent" and results.count("sent") == 1, results
        assert len(tries) >= 4, results  # at least the three failures we waited for
        assert all("451" in r and "try again later" in r for r in results[:-1]), results
        assert doc["attempts"] == len(tries) and doc["status"] == "sent"
        failed_tries += len(tries) - 1
        moments = [_aware(t["at"]) for t in tries]
        for n, (earlier, later) in enumerate(pairwise(moments), start=1):
            gap = (later - earlier).total_seconds()
            nominal = base * 2 ** (n - 1)
            assert gap >= nominal * 0.5 - SLACK, f"{pid}: gap {n} was {gap:.3f}s, backoff {nominal}s"
            # ... and not much later than the jitter's upper end (one poll, the sends before it).
            assert gap <= nominal * 1.5 + 1.0, f"{pid}: gap {n} was {gap:.3f}s, backoff {nominal}s"
            ratios.append(gap / nominal)
    assert server.refused == failed_tries  # every refusal is on record, none more
    assert max(ratios) - min(ratios) > 0.1, f"no jitter in the delays: {ratios}"


def operator_api(runtime: Runtime, delivery: Delivery) -> httpx.AsyncClient:
    """Notifications' HTTP API (its real routes) on the test's runtime, called in-process."""
    app = FastAPI()
    app.include_router(api.router)
    app.state.runtime = runtime
    app.state.operator_digest = hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest()
    app.state.link_secret = delivery.link_secret
    app.state.wake = delivery.wake
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://notifications.test",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )


async def test_always_refused_is_dead_lettered_then_redriven_and_sent_once(infra: Stack) -> None:
    with flaky_server() as (server, port):
        settings = notification_settings(infra, port, max_attempts=3, retry_base_s=0.1)
        async with delivering(settings) as (runtime, delivery):
            event_id, emails = await a_scene(runtime, 1)
            [pid] = emails
            await queue_confirmations(runtime, delivery, event_id, [pid])

            async def failed() -> bool:
                doc = await runtime.db[OUTGOING].find_one({"_id": key(pid)})
                return doc is not None and doc["status"] == "failed"

            await eventually(failed, within=15)
            doc = await runtime.db[OUTGOING].find_one({"_id": key(pid)})
            assert doc is not None
            assert doc["attempts"] == 3 and len(doc["tries"]) == 3
            assert doc["reason"].startswith("3 attempts failed; last: "), doc["reason"]
            assert "try again later" in doc["reason"]
            assert server.refused == 3 and not server.received

            # The dead letter is recorded with the change, then published for operators.
            letter = await runtime.db["outbox"].find_one(
                {"type": "MessageDeadLettered", "payload": {"$regex": pid}}
            )
            assert letter is not None and letter["topic"] == topics.DEAD_LETTERS

            def is_ours(record: Any) -> bool:
                return bool(record.value and letter is not None and letter["_id"].encode() in record.value)

            async with asyncio.timeout(20):
                record = await first_on_topic(infra.config.kafka_bootstrap, topics.DEAD_LETTERS, is_ours)
            assert b"3 attempts failed" in record.value and key(pid).encode() in record.value

            # Nothing more is tried while it is dead-lettered.
            await asyncio.sleep(1)
            assert server.refused == 3

            # The server accepts again; the operator re-drives the message: it is sent once.
            server.accepting = True
            async with operator_api(runtime, delivery) as client:
                redriven = await client.post(f"/outgoing/{key(pid)}/redrive")
                assert redriven.status_code == 200, redriven.text

                async def sent() -> bool:
                    doc = await runtime.db[OUTGOING].find_one({"_id": key(pid)})
                    return doc is not None and doc["status"] == "sent"

                await eventually(sent, within=10)
                again = await client.post(f"/outgoing/{key(pid)}/redrive")
                assert again.status_code == 409  # only a failed message can be re-driven
                await asyncio.sleep(3 * IDLE_POLL)
            doc = await runtime.db[OUTGOING].find_one({"_id": key(pid)})

    assert len(server.message_ids()) == 1 and server.addressees() == [emails[pid]]
    assert doc is not None
    assert [t["result"] == "sent" for t in doc["tries"]] == [False, False, False, True]
    assert doc["attempts"] == 1 and _aware(doc["redriven_at"]) <= _aware(doc["sent_at"])
    assert _aware(doc["sent_at"]) - _aware(doc["created_at"]) < timedelta(seconds=30)


async def test_a_mail_that_cannot_be_written_is_dead_lettered_at_once_with_the_reason(infra: Stack) -> None:
    """A message delivery cannot write (here a kind this version does not know, as one left
    by another version would be) is set aside with the reason at its first try, not tried
    again every lease; the others go out."""
    with flaky_server() as (server, port):
        server.accepting = True
        settings = notification_settings(infra, port)
        async with delivering(settings) as (runtime, delivery):
            event_id, emails = await a_scene(runtime, 1)
            [pid] = emails

            async def work(uow: UnitOfWork) -> None:
                assert await outgoing.queue(uow, "no_such_kind", pid, pid, {"event_id": event_id})

            await runtime.transact(work, "unwritable-test")
            await queue_confirmations(runtime, delivery, event_id, [pid])
            bad = outgoing.dedupe_key("no_such_kind", pid, pid)

            async def settled() -> bool:
                statuses = {d["_id"]: d["status"] async for d in runtime.db[OUTGOING].find()}
                return statuses == {bad: "failed", key(pid): "sent"}

            await eventually(settled, within=15)
            await asyncio.sleep(5 * IDLE_POLL)  # room for a (wrong) second try
            doc = await runtime.db[OUTGOING].find_one({"_id": bad})
            letter = await runtime.db["outbox"].find_one(
                {"type": "MessageDeadLettered", "payload": {"$regex": re.escape(bad)}}
            )

    assert doc is not None and doc["attempts"] == 1 and len(doc["tries"]) == 1
    assert doc["reason"].startswith("the mail could not be written: KeyError"), doc["reason"]
    assert letter is not None and letter["topic"] == topics.DEAD_LETTERS
    assert server.addressees() == [emails[pid]], "the other mail went, once"
