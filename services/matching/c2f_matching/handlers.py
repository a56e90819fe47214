"""Matching's consumers: keep the read model of registration's facts (profiles with their
text vectors, events, participants) and suggest each participant its best partners at
its event when a participant, a company or an event becomes known or changes."""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from c2f_matching.matcher import Matcher
from c2f_matching.scoring import top_pairs
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    Event,
    EventCreated,
    EventUpdated,
    MatchParty,
    MatchSuggested,
    ParticipantRegistered,
    ParticipantWithdrawn,
)
from c2f_shared.service import UnitOfWork
from c2f_shared.service.runtime import Handler

COMPANIES = "companies"
PARTICIPANTS = "participants"
EVENTS = "events"
SUGGESTIONS = "suggestions"
READ_MODEL = (COMPANIES, PARTICIPANTS, EVENTS)  # what a rebuild starts afresh; suggestions made stay

# Each participant is suggested at most its TOP_K best partners, each pair once.
TOP_K = 5

HANDLES = (
    CompanyRegistered,
    CompanyUpdated,
    CompanyErased,
    EventCreated,
    EventUpdated,
    ParticipantRegistered,
    ParticipantWithdrawn,
)

_SUGGESTION_NS = uuid.UUID("6f1c7e0a-3f7e-4c52-9a53-6c2f0d1c2f00")


def suggestion_id(event_id: str, participant_a: str, participant_b: str) -> str:
    """The same pair at the same event always gets the same suggestion id."""
    first, second = sorted((participant_a, participant_b))
    return str(uuid.uuid5(_SUGGESTION_NS, f"{event_id}/{first}/{second}"))


def make_handler(matcher: Matcher) -> Handler:
    async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if isinstance(event, CompanyRegistered | CompanyUpdated):
            known = await uow.db[COMPANIES].find_one(
                {"_id": event.company_id}, {"revision": 1}, session=uow.session
            )
            if known is not None and known.get("revision", 0) >= event.revision:
                return  # an older revision arriving late
            # Matching needs what a company offers and seeks, not who its people are.
            doc = event.model_dump(mode="json", exclude={"contacts"})
            doc["vectors"] = await matcher.encode(doc["offers"], doc["needs"])
            await _upsert(uow, COMPANIES, event.company_id, doc)
            async for participant in uow.db[PARTICIPANTS].find(
                {"company_id": event.company_id}, session=uow.session
            ):
                await suggest_for(uow, matcher, participant)
        elif isinstance(event, CompanyErased):
            await _forget_company(uow, event.company_id)
        elif isinstance(event, ParticipantRegistered):
            if event.company_id is None:
                return  # C2C delegations are matched by the meetings work (issue 5)
            doc = {
                "event_id": event.event_id,
                "company_id": event.company_id,
                "token_hash": event.access_token_hash,
            }
            await _upsert(uow, PARTICIPANTS, event.participant_id, doc)
            await suggest_for(uow, matcher, {"_id": event.participant_id, **doc})
        elif isinstance(event, ParticipantWithdrawn):
            await uow.db[PARTICIPANTS].delete_one({"_id": event.participant_id}, session=uow.session)
        elif isinstance(event, EventCreated | EventUpdated):
            await _upsert(uow, EVENTS, event.event_id, {"name": event.name, "kind": event.kind})
            async for participant in uow.db[PARTICIPANTS].find(
                {"event_id": event.event_id}, session=uow.session
            ):
                await suggest_for(uow, matcher, participant)

    return handle


async def _upsert(uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]) -> None:
    await uow.db[collection].update_one(
        {"_id": doc_id}, {"$set": {**doc, "updated_at": datetime.now(UTC)}}, upsert=True, session=uow.session
    )


async def event_profiles(uow_or_db: Any, matcher: Matcher, event_id: str, session: Any = None) -> list[Any]:
    """Every participant of the event whose company is known, as scoring profiles."""
    db = uow_or_db
    participants = await db[PARTICIPANTS].find({"event_id": event_id}, session=session).to_list(None)
    company_ids = list({p["company_id"] for p in participants})
    companies = {
        c["_id"]: c
        for c in await db[COMPANIES].find({"_id": {"$in": company_ids}}, session=session).to_list(None)
    }
    return [
        matcher.profile(p["_id"], companies[p["company_id"]])
        for p in participants
        if p["company_id"] in companies
    ]


async def suggest_for(uow: UnitOfWork, matcher: Matcher, participant: dict[str, Any]) -> None:
    """Publish `participant`'s best partners at its event that were not suggested before."""
    event = await uow.db[EVENTS].find_one({"_id": participant["event_id"]}, session=uow.session)
    if event is None or event.get("kind") != "b2b":
        return  # people meet one to one at B2B events (C2C delegations: issue 5; webinars: no meetings)
    profiles = await event_profiles(uow.db, matcher, participant["event_id"], uow.session)
    me = next((p for p in profiles if p.participant_id == participant["_id"]), None)
    if me is None:
        return  # its company's profile has not reached us yet
    others = [p for p in profiles if p.participant_id != me.participant_id]
    for other, scored in top_pairs(me, others, TOP_K):
        sid = suggestion_id(event["_id"], me.participant_id, other.participant_id)
        suggested = MatchSuggested(
            suggestion_id=sid,
            event_id=event["_id"],
            event_name=event["name"],
            parties=(_party(me), _party(other)),
            reasons=scored.reasons,
            score=scored.score,
            signals=scored.signals,
            score_parts=scored.parts,
        )
        result = await uow.db[SUGGESTIONS].update_one(
            {"_id": sid},
            {
                "$setOnInsert": {
                    **suggested.model_dump(mode="json", exclude={"suggestion_id"}),
                    "participant_ids": [me.participant_id, other.participant_id],
                    "created_at": datetime.now(UTC),
                }
            },
            upsert=True,
            session=uow.session,
        )
        if result.upserted_id is not None:
            uow.emit(suggested, event_id=sid)


async def _forget_company(uow: UnitOfWork, company_id: str) -> None:
    """Erasure: the company, its participants and every suggestion naming them go."""
    participant_ids = [
        p["_id"]
        async for p in uow.db[PARTICIPANTS].find({"company_id": company_id}, {"_id": 1}, session=uow.session)
    ]
    await uow.db[SUGGESTIONS].delete_many({"participant_ids": {"$in": participant_ids}}, session=uow.session)
    await uow.outbox.forget({"payload": {"$regex": re.escape(company_id)}}, uow.session)
    await uow.db[PARTICIPANTS].delete_many({"company_id": company_id}, session=uow.session)
    await uow.db[COMPANIES].delete_one({"_id": company_id}, session=uow.session)


def _party(profile: Any) -> MatchParty:
    return MatchParty(
        participant_id=profile.participant_id,
        company_id=profile.company_id,
        company_name=profile.company_name,
        country=profile.country,
    )


async def ensure_indexes(db: Any) -> None:
    await db[PARTICIPANTS].create_index("event_id")
    await db[PARTICIPANTS].create_index("company_id")
    await db[SUGGESTIONS].create_index("event_id")
    await db[SUGGESTIONS].create_index("participant_ids")
