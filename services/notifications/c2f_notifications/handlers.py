"""Notifications' consumers: know the recipients, and queue one message per fact and person.

The queue entry's id is its dedupe key (kind, fact, recipient), so a redelivered
event queues nothing new and the same person is never told the same thing twice.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    CompanyErased,
    Event,
    MatchSuggested,
    ParticipantRegistered,
    ParticipantWithdrawn,
)
from c2f_shared.service import UnitOfWork
from c2f_shared.service.runtime import Handler

RECIPIENTS = "recipients"
OUTGOING = "outgoing"

MATCH_SUGGESTED = "match_suggested"
HANDLES = (ParticipantRegistered, ParticipantWithdrawn, MatchSuggested, CompanyErased)


def dedupe_key(kind: str, about_id: str, recipient_id: str) -> str:
    return f"{kind}:{about_id}:{recipient_id}"


async def _forget_company(uow: UnitOfWork, company_id: str) -> None:
    """Erasure: the company's people and what was queued for them go; messages to others
    that named them keep only their status."""
    people = [
        r["_id"]
        async for r in uow.db[RECIPIENTS].find({"company_id": company_id}, {"_id": 1}, session=uow.session)
    ]
    await uow.db[OUTGOING].delete_many({"recipient_id": {"$in": people}}, session=uow.session)
    await uow.db[OUTGOING].update_many(
        {"fact.parties.company_id": company_id, "status": {"$in": ["pending", "sending"]}},
        {"$set": {"status": "cancelled", "reason": "a party was erased"}},
        session=uow.session,
    )
    await uow.db[OUTGOING].update_many(
        {"fact.parties.company_id": company_id}, {"$unset": {"fact": ""}}, session=uow.session
    )
    await uow.db[RECIPIENTS].delete_many({"company_id": company_id}, session=uow.session)


def make_handler(wake: Callable[[], None]) -> Handler:
    async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if isinstance(event, ParticipantRegistered):
            await uow.db[RECIPIENTS].update_one(
                {"_id": event.participant_id},
                {
                    "$set": {
                        **event.attendee.model_dump(),
                        "consent_share_contact": event.consent_share_contact,
                        "event_id": event.event_id,
                        "company_id": event.company_id,
                    }
                },
                upsert=True,
                session=uow.session,
            )
        elif isinstance(event, MatchSuggested):
            now = datetime.now(UTC)
            for party in event.parties:
                await uow.db[OUTGOING].update_one(
                    {"_id": dedupe_key(MATCH_SUGGESTED, event.suggestion_id, party.participant_id)},
                    {
                        "$setOnInsert": {
                            "kind": MATCH_SUGGESTED,
                            "about_id": event.suggestion_id,
                            "recipient_id": party.participant_id,
                            "fact": event.model_dump(mode="json"),
                            "correlation_id": envelope.correlation_id,
                            "status": "pending",
                            "attempts": 0,
                            "waits": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                    },
                    upsert=True,
                    session=uow.session,
                )
        elif isinstance(event, ParticipantWithdrawn):
            await uow.db[OUTGOING].update_many(
                {"recipient_id": event.participant_id, "status": "pending"},
                {"$set": {"status": "cancelled", "reason": "the participant withdrew"}},
                session=uow.session,
            )
            return
        elif isinstance(event, CompanyErased):
            await _forget_company(uow, event.company_id)
            return
        else:
            return
        uow.after_commit(wake)

    return handle
