"""Notifications' intake on the real database: a batch of facts handled in one unit of work
(as the pipeline handles what waits in a lane) writes each collection of its read model in one
statement; sign-ups queue each confirmation once, and a redelivered batch queues nothing more."""

import uuid
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from c2f_cli.stack import Stack
from c2f_notifications.config import Settings
from c2f_notifications.handlers import make_handlers
from c2f_notifications.store import COMPANIES, OUTGOING, RECIPIENTS
from c2f_shared.envelope import Envelope
from c2f_shared.events import Attendee, Event, ParticipantRegistered
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.unit_of_work import Transactions
from tests.support import Statements
from tests.unit.test_handlers import company

pytestmark = pytest.mark.asyncio(loop_scope="session")


def signed_up(n: int) -> ParticipantRegistered:
    return ParticipantRegistered(
        participant_id=f"p{n}",
        event_id="ev1",
        company_id=f"c{n}",
        cluster_id="k1",
        attendee=Attendee(name=f"Ana {n}", email=f"ana{n}@example.org", language="es"),
        consent_share_contact=False,
    )


async def test_a_batch_writes_each_collection_of_the_read_model_in_one_statement(infra: Stack) -> None:
    statements = Statements()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.config.scratch_mongo_uri, tz_aware=True, event_listeners=[statements]
    )
    db = client[f"intake_{uuid.uuid4().hex[:10]}"]
    handlers = make_handlers(Settings(), lambda: None)
    transactions = Transactions(client, db, Outbox(db, KafkaBroker()), "notifications")

    async def handle(batch: list[Event], collection: str) -> list[tuple[str, Any]]:
        statements.sent.clear()
        async with transactions.unit_of_work("test") as uow:
            for event in batch:
                envelope = Envelope.wrap(event, producer="test", correlation_id="test")
                await handlers[type(event)](event, envelope, uow)
        return [sent for sent in statements.sent if sent[1] == collection]

    sign_ups: list[Event] = [signed_up(n) for n in range(10)]
    try:
        assert await handle(sign_ups, RECIPIENTS) == [("update", RECIPIENTS)], "one statement"
        assert await handle(sign_ups, RECIPIENTS) == [("update", RECIPIENTS)], "redelivered"
        companies: list[Event] = [company(f"c{n}") for n in range(5)]
        assert await handle(companies, COMPANIES) == [("update", COMPANIES)]
        people = {p["_id"]: p async for p in db[RECIPIENTS].find()}
        queued = await db[OUTGOING].find({"channel": "email"}).to_list(None)
        known = {c["_id"]: c async for c in db[COMPANIES].find()}
    finally:
        await client.drop_database(db.name)
        await client.close()
    assert sorted(people) == [f"p{n}" for n in range(10)]
    assert people["p3"]["email"] == "ana3@example.org" and people["p3"]["status"] == "registered"
    assert sorted(m["recipient_id"] for m in queued) == sorted(people), "each confirmed once"
    assert {m["kind"] for m in queued} == {"registration_confirmed"}
    assert sorted(known) == [f"c{n}" for n in range(5)]
    assert [c["name"] for c in known["c2"]["contacts"]] == ["Ana", "Boris"], "only those who agreed"
