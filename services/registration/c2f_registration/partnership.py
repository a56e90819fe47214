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
    EventCreated,
    EventUpdated,
    ParticipantRegistered,
    ParticipantWithdrawn,
)
from c2f_shared.service import Handlers, UnitOfWork
from c2f_shared.service.unit_of_work import existing

FOREIGN_PARTICIPANTS = "foreign_participants"


async def _cluster(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
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
    )


async def _participant(event: ParticipantRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    # Most are this instance's own sign-ups, coming back: asked for the whole batch at once.
    ahead = [e.participant_id for e in uow.batch if isinstance(e, ParticipantRegistered)]
    if await existing(uow, store.PARTICIPANTS, [event.participant_id], ahead):
        return
    inserted = await uow.db[FOREIGN_PARTICIPANTS].update_one(
        {"_id": event.participant_id},
        {"$setOnInsert": {"event_id": event.event_id, "company_id": event.company_id}},
        upsert=True,
    )
    if inserted.upserted_id is not None:
        await _count(uow, event.event_id, +1)


async def _withdrawn(event: ParticipantWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    await _forget_foreign({"_id": event.participant_id}, uow)


async def _erased(event: CompanyErased, envelope: Envelope, uow: UnitOfWork) -> None:
    await _forget_foreign({"company_id": event.company_id}, uow)


async def _foreign_event(event: EventCreated | EventUpdated, envelope: Envelope, uow: UnitOfWork) -> None:
    events = uow.db[store.EVENTS]
    known = await events.find_one({"_id": event.event_id})
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
    )


async def _forget_foreign(query: dict[str, Any], uow: UnitOfWork) -> None:
    async for participant in uow.db[FOREIGN_PARTICIPANTS].find(query):
        await uow.db[FOREIGN_PARTICIPANTS].delete_one({"_id": participant["_id"]})
        await _count(uow, participant["event_id"], -1)


async def _count(uow: UnitOfWork, event_id: str, delta: int) -> None:
    await uow.db[store.EVENTS].update_one(
        {"_id": event_id},
        {
            "$inc": {"registered": delta},
            "$setOnInsert": {"natural_key": f"foreign:{event_id}", "foreign": True},
        },
        upsert=delta > 0,  # a sign-up may arrive before its event
    )


HANDLERS: Handlers = {
    ClusterRegistered: _cluster,
    EventCreated: _foreign_event,
    EventUpdated: _foreign_event,
    ParticipantRegistered: _participant,
    ParticipantWithdrawn: _withdrawn,
    CompanyErased: _erased,
}
