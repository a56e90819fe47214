"""What one registration instance learns from the others through the topics.

Several instances may run, one per cluster, each with its own database. A
cluster's members may sign up for any partnership event, so each instance keeps
the clusters and events registered elsewhere (marked `foreign`), and counts the sign-ups made
elsewhere for every event, so that capacity holds across instances (eventually:
sign-ups made at the same moment on two instances can overshoot by those few).
"""

from typing import Any

from c2f_registration import store
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ClusterRegistered,
    CompanyErased,
    Event,
    EventCreated,
    EventUpdated,
    ParticipantRegistered,
    ParticipantWithdrawn,
)
from c2f_shared.service import UnitOfWork

FOREIGN_PARTICIPANTS = "foreign_participants"
HANDLES = (
    ClusterRegistered,
    EventCreated,
    EventUpdated,
    ParticipantRegistered,
    ParticipantWithdrawn,
    CompanyErased,
)


async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    if isinstance(event, ClusterRegistered):
        # Clusters served elsewhere are listed too, and may sign agreements, but have no members here.
        await uow.db[store.CLUSTERS].update_one(
            {"_id": event.cluster_id},
            {
                "$setOnInsert": {
                    "natural_key": f"foreign:{event.cluster_id}",
                    "foreign": True,
                    "data": event.model_dump(mode="json", exclude={"cluster_id"}),
                    "created_at": envelope.occurred_at,
                }
            },
            upsert=True,
            session=uow.session,
        )
    elif isinstance(event, EventCreated | EventUpdated):
        await _foreign_event(uow, event)
    elif isinstance(event, ParticipantRegistered):
        if await _is_local_participant(uow, event.participant_id):
            return
        inserted = await uow.db[FOREIGN_PARTICIPANTS].update_one(
            {"_id": event.participant_id},
            {"$setOnInsert": {"event_id": event.event_id, "company_id": event.company_id}},
            upsert=True,
            session=uow.session,
        )
        if inserted.upserted_id is not None:
            await _count(uow, event.event_id, +1)
    elif isinstance(event, ParticipantWithdrawn):
        await _forget_foreign({"_id": event.participant_id}, uow)
    elif isinstance(event, CompanyErased):
        await _forget_foreign({"company_id": event.company_id}, uow)


async def _foreign_event(uow: UnitOfWork, event: EventCreated | EventUpdated) -> None:
    events = uow.db[store.EVENTS]
    known = await events.find_one({"_id": event.event_id}, session=uow.session)
    if known is not None and (not known.get("foreign") or known["revision"] >= event.revision):
        return  # our own event, or an older revision arriving late
    facts = event.model_dump(mode="json")
    data = {k: v for k, v in facts.items() if k not in ("event_id", "revision", "slots")}
    await events.update_one(
        {"_id": event.event_id},
        {
            "$set": {"data": data, "slots": facts["slots"], "revision": event.revision, "foreign": True},
            "$setOnInsert": {"natural_key": f"foreign:{event.event_id}", "registered": 0},
        },
        upsert=True,
        session=uow.session,
    )


async def _is_local_participant(uow: UnitOfWork, participant_id: str) -> bool:
    return (
        await uow.db[store.PARTICIPANTS].find_one({"_id": participant_id}, {"_id": 1}, session=uow.session)
        is not None
    )


async def _forget_foreign(query: dict[str, Any], uow: UnitOfWork) -> None:
    async for participant in uow.db[FOREIGN_PARTICIPANTS].find(query, session=uow.session):
        await uow.db[FOREIGN_PARTICIPANTS].delete_one({"_id": participant["_id"]}, session=uow.session)
        await _count(uow, participant["event_id"], -1)


async def _count(uow: UnitOfWork, event_id: str, delta: int) -> None:
    await uow.db[store.EVENTS].update_one(
        {"_id": event_id},
        {
            "$inc": {"registered": delta},
            "$setOnInsert": {"natural_key": f"foreign:{event_id}", "foreign": True},
        },
        upsert=delta > 0,  # a sign-up may arrive before its event
        session=uow.session,
    )
