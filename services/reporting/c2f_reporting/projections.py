"""Reporting's projections: one collection per kind of fact, one document per aggregate."""

from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ClusterRegistered,
    CompanyRegistered,
    Event,
    EventCreated,
    MatchSuggested,
    MessageDeadLettered,
    NotificationSent,
    ParticipantRegistered,
)
from c2f_shared.service import UnitOfWork

# event type -> (collection, id field)
PROJECTIONS: dict[type[Event], tuple[str, str]] = {
    ClusterRegistered: ("clusters", "cluster_id"),
    CompanyRegistered: ("companies", "company_id"),
    EventCreated: ("events", "event_id"),
    ParticipantRegistered: ("participants", "participant_id"),
    MatchSuggested: ("match_suggestions", "suggestion_id"),
    NotificationSent: ("notifications", "notification_id"),
    MessageDeadLettered: ("dead_letters", "dead_letter_id"),
}


async def project(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    where = PROJECTIONS.get(type(event))
    if where is None:
        return
    collection, id_field = where
    data = event.model_dump(mode="json", exclude={id_field})
    if isinstance(event, ParticipantRegistered):
        data.pop("attendee")  # reports count people; they do not need their contact data
    await uow.db[collection].update_one(
        {"_id": getattr(event, id_field)},
        {"$set": {**data, "occurred_at": envelope.occurred_at}},
        upsert=True,
        session=uow.session,
    )
