"""Reporting's projections: one collection per kind of fact, one document per aggregate."""

from pymongo import UpdateOne

from c2f_reporting.store import (
    AGREEMENTS,
    CLUSTERS,
    COMPANIES,
    DEAD_LETTERS_SEEN,
    ERASURES,
    EVENTS,
    MATCH_SUGGESTIONS,
    MEETINGS,
    NOTIFICATIONS,
    OUTCOMES,
    PARTICIPANTS,
)
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ERASED_PARTY,
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    Event,
    EventCreated,
    EventUpdated,
    MatchSuggested,
    MeetingAccepted,
    MeetingCancelled,
    MeetingDeclined,
    MeetingOutcomeRecorded,
    MeetingRequested,
    MeetingScheduled,
    MeetingUnscheduled,
    MessageDeadLettered,
    NotificationSent,
    ParticipantRegistered,
    ParticipantWithdrawn,
    PartnershipAgreementSigned,
    _MeetingFacts,
)
from c2f_shared.service import Handlers, UnitOfWork
from c2f_shared.service.unit_of_work import existing

# event type -> (collection, id field)
PROJECTIONS: dict[type[Event], tuple[str, str]] = {
    ClusterRegistered: (CLUSTERS, "cluster_id"),
    CompanyRegistered: (COMPANIES, "company_id"),
    CompanyUpdated: (COMPANIES, "company_id"),
    EventCreated: (EVENTS, "event_id"),
    EventUpdated: (EVENTS, "event_id"),
    ParticipantRegistered: (PARTICIPANTS, "participant_id"),
    MatchSuggested: (MATCH_SUGGESTIONS, "suggestion_id"),
    NotificationSent: (NOTIFICATIONS, "notification_id"),
    MessageDeadLettered: (DEAD_LETTERS_SEEN, "dead_letter_id"),
    PartnershipAgreementSigned: (AGREEMENTS, "agreement_id"),
}


async def _erased(event: CompanyErased, envelope: Envelope, uow: UnitOfWork) -> None:
    await _forget_company(uow, event.company_id)
    # Ids and a date only: a suggestion about the company still in flight is recognised.
    await uow.db[ERASURES].update_one(
        {"_id": event.company_id}, {"$set": {"erased_at": envelope.occurred_at}}, upsert=True
    )


async def _suggested(event: MatchSuggested, envelope: Envelope, uow: UnitOfWork) -> None:
    ahead = [p.company_id for e in uow.batch if isinstance(e, MatchSuggested) for p in e.parties]
    if await existing(uow, ERASURES, [p.company_id for p in event.parties], ahead):
        return  # made before its company was erased, arrived after
    await _projected(event, envelope, uow)


async def _withdrawn(event: ParticipantWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    await uow.db[PARTICIPANTS].update_one({"_id": event.participant_id}, {"$set": {"status": "withdrawn"}})


async def _projected(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """The fact's aggregate, as the latest fact about it says."""
    collection, id_field = PROJECTIONS[type(event)]
    data = event.model_dump(mode="json", exclude={id_field})
    if isinstance(event, ParticipantRegistered):
        # Reports count people; they need neither their contact data nor their token.
        data.pop("attendee")
        data.pop("access_token_hash")
        data["status"] = "registered"
    if isinstance(event, CompanyRegistered | CompanyUpdated):
        # Only contacts that agreed to appear in the brochure are kept.
        data["contacts"] = [c for c in data["contacts"] if c["consent"] == "brochure"]
    # Sent with the batch's other writes to the collection (one statement for the batch).
    uow.db[collection].write_later(
        UpdateOne(
            {"_id": getattr(event, id_field)},
            {"$set": {**data, "occurred_at": envelope.occurred_at}},
            upsert=True,
        )
    )


async def _meeting(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """One document per meeting (its latest state, whether it is in the schedule) and one per
    side's outcome. Facts of one event arrive in order (they are keyed by event)."""
    if isinstance(event, MeetingOutcomeRecorded):
        key = f"{event.meeting_id}:{event.participant_id}"
        known = await uow.db[OUTCOMES].find_one({"_id": key}, {"revision": 1})
        if known is not None and known.get("revision", 0) > event.revision:
            return  # an older account arriving after a newer one
        data = event.model_dump(mode="json")
        await uow.db[OUTCOMES].update_one({"_id": key}, {"$set": data}, upsert=True)
        return
    assert isinstance(event, _MeetingFacts | MeetingScheduled | MeetingUnscheduled)
    if ERASED_PARTY in event.parties:
        # The cancellation an erasure caused: the meeting leaves the reports with its company.
        await uow.db[MEETINGS].delete_one({"_id": event.meeting_id})
        await uow.db[OUTCOMES].delete_many({"meeting_id": event.meeting_id})
        return
    changes: dict[str, object]
    if isinstance(event, MeetingScheduled):
        changes = {"scheduled": True, "slot_id": event.slot_id, "table": event.table}
    elif isinstance(event, MeetingUnscheduled):
        changes = {"scheduled": False}
    else:
        assert isinstance(event, _MeetingFacts)
        changes = {"status": event.status, "requested_by": event.requested_by}
    changes |= {"event_id": event.event_id, "parties": event.parties}
    await uow.db[MEETINGS].update_one(
        {"_id": event.meeting_id},
        {"$set": changes},
        upsert=True,
    )


async def _forget_company(uow: UnitOfWork, company_id: str) -> None:
    """Erasure: the company disappears from every report, with its participants and matches."""
    db = uow.db
    people = [p["_id"] async for p in db[PARTICIPANTS].find({"company_id": company_id}, {"_id": 1})]
    await db[MATCH_SUGGESTIONS].delete_many({"parties.company_id": company_id})
    await db[NOTIFICATIONS].delete_many({"recipient_participant_id": {"$in": people}})
    meetings = [m["_id"] async for m in db[MEETINGS].find({"parties": {"$in": people}}, {"_id": 1})]
    await db[MEETINGS].delete_many({"_id": {"$in": meetings}})
    await db[OUTCOMES].delete_many(
        {"$or": [{"participant_id": {"$in": people}}, {"meeting_id": {"$in": meetings}}]}
    )
    await db[PARTICIPANTS].delete_many({"company_id": company_id})
    await db[COMPANIES].delete_one({"_id": company_id})


HANDLERS: Handlers = {
    **dict.fromkeys(PROJECTIONS, _projected),
    MatchSuggested: _suggested,
    CompanyErased: _erased,
    ParticipantWithdrawn: _withdrawn,
    **dict.fromkeys(
        [
            MeetingRequested,
            MeetingAccepted,
            MeetingDeclined,
            MeetingCancelled,
            MeetingScheduled,
            MeetingUnscheduled,
            MeetingOutcomeRecorded,
        ],
        _meeting,
    ),
}
