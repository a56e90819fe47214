"""Matching's consumers: keep the read model of registration's facts and suggest
meetings when a participant, a company or an event becomes known."""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from c2f_matching.rules import Profile, match
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
    Need,
    Offer,
    ParticipantRegistered,
    ParticipantWithdrawn,
)
from c2f_shared.service import UnitOfWork

COMPANIES = "companies"
PARTICIPANTS = "participants"
EVENTS = "events"
SUGGESTIONS = "suggestions"

_SUGGESTION_NS = uuid.UUID("6f1c7e0a-3f7e-4c52-9a53-6c2f0d1c2f00")


def suggestion_id(event_id: str, participant_a: str, participant_b: str) -> str:
    """The same pair at the same event always gets the same suggestion id."""
    first, second = sorted((participant_a, participant_b))
    return str(uuid.uuid5(_SUGGESTION_NS, f"{event_id}/{first}/{second}"))


async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    if isinstance(event, CompanyRegistered | CompanyUpdated):
        known = await uow.db[COMPANIES].find_one(
            {"_id": event.company_id}, {"revision": 1}, session=uow.session
        )
        if known is not None and known.get("revision", 0) >= event.revision:
            return  # an older revision arriving late
        # Matching needs what a company offers and seeks, not who its people are.
        await _upsert(uow, COMPANIES, event.company_id, event.model_dump(mode="json", exclude={"contacts"}))
        participants = uow.db[PARTICIPANTS].find({"company_id": event.company_id}, session=uow.session)
        async for participant in participants:
            await _suggest_for(uow, participant)
    elif isinstance(event, CompanyErased):
        await _forget_company(uow, event.company_id)
    elif isinstance(event, ParticipantRegistered):
        if event.company_id is None:
            return  # C2C delegations are matched by the meetings work (issue 5)
        doc = {"event_id": event.event_id, "company_id": event.company_id}
        await _upsert(uow, PARTICIPANTS, event.participant_id, doc)
        await _suggest_for(uow, {"_id": event.participant_id, **doc})
    elif isinstance(event, ParticipantWithdrawn):
        await uow.db[PARTICIPANTS].delete_one({"_id": event.participant_id}, session=uow.session)
    elif isinstance(event, EventCreated | EventUpdated):
        await _upsert(uow, EVENTS, event.event_id, {"name": event.name, "kind": event.kind})
        participants = uow.db[PARTICIPANTS].find({"event_id": event.event_id}, session=uow.session)
        async for participant in participants:
            await _suggest_for(uow, participant)


async def _upsert(uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]) -> None:
    await uow.db[collection].update_one(
        {"_id": doc_id}, {"$set": {**doc, "updated_at": datetime.now(UTC)}}, upsert=True, session=uow.session
    )


async def _profile(uow: UnitOfWork, participant: dict[str, Any]) -> Profile | None:
    company = await uow.db[COMPANIES].find_one({"_id": participant["company_id"]}, session=uow.session)
    if company is None:
        return None  # the company's registration has not reached us yet
    return Profile(
        participant_id=participant["_id"],
        company_id=company["_id"],
        company_name=company["legal_name"],
        country=company["country"],
        offers=tuple(Offer.model_validate(o) for o in company["offers"]),
        needs=tuple(Need.model_validate(n) for n in company["needs"]),
    )


async def _suggest_for(uow: UnitOfWork, participant: dict[str, Any]) -> None:
    """Suggest meetings between `participant` and every other participant of its event."""
    event = await uow.db[EVENTS].find_one({"_id": participant["event_id"]}, session=uow.session)
    me = await _profile(uow, participant)
    if event is None or me is None:
        return
    others = uow.db[PARTICIPANTS].find(
        {"event_id": participant["event_id"], "_id": {"$ne": participant["_id"]}}, session=uow.session
    )
    async for other in others:
        them = await _profile(uow, other)
        if them is None:
            continue
        found = match(me, them)
        if found is None:
            continue
        score, reasons = found
        sid = suggestion_id(event["_id"], me.participant_id, them.participant_id)
        suggested = MatchSuggested(
            suggestion_id=sid,
            event_id=event["_id"],
            event_name=event["name"],
            parties=(_party(me), _party(them)),
            reasons=reasons,
            score=score,
        )
        result = await uow.db[SUGGESTIONS].update_one(
            {"_id": sid},
            {
                "$setOnInsert": {
                    **suggested.model_dump(mode="json", exclude={"suggestion_id"}),
                    "participant_ids": [me.participant_id, them.participant_id],
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


def _party(profile: Profile) -> MatchParty:
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
