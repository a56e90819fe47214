"""Matchmaking events and the participants who sign up for them."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from c2f_registration import auth, store
from c2f_registration.api.common import CREATED, not_found, register, unknown
from c2f_registration.schemas import EventIn, EventOut, ParticipantIn, ParticipantOut
from c2f_shared.events import Attendee, EventCreated, ParticipantRegistered
from c2f_shared.service.http import CorrelationId, RuntimeDep

router = APIRouter()


@router.post("/events", status_code=201, response_model=EventOut, responses=CREATED, tags=["events"])
async def create_event(
    body: EventIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> EventOut:
    """Create a B2B or C2C matchmaking event hosted by a cluster (the operator, or the host's key)."""
    auth.require_may_act_for(caller, body.host_cluster_id)
    if await store.get(runtime, store.CLUSTERS, body.host_cluster_id) is None:
        raise unknown("host_cluster_id", "cluster", body.host_cluster_id)
    data = body.model_dump(mode="json")
    stored = await register(
        response,
        runtime,
        store.EVENTS,
        f"{body.host_cluster_id}:{body.name.casefold()}:{body.starts_at.isoformat()}",
        data,
        lambda new_id: EventCreated(event_id=new_id, **data),
        correlation,
    )
    return EventOut(**stored.data, id=stored.id, created=stored.created)


@router.get("/events", response_model=list[EventOut], tags=["events"])
async def list_events(runtime: RuntimeDep, _: auth.Caller) -> list[EventOut]:
    """Every partnership event, soonest first."""
    docs = await runtime.db[store.EVENTS].find().sort("data.starts_at").to_list(None)
    return [EventOut(**d["data"], id=d["_id"], created=False) for d in docs]


@router.post(
    "/events/{event_id}/participants",
    status_code=201,
    response_model=ParticipantOut,
    responses={**CREATED, 404: {"description": "No such event"}},
    tags=["participants"],
)
async def register_participant(
    event_id: str,
    body: ParticipantIn,
    response: Response,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    caller: auth.Caller,
) -> ParticipantOut:
    """Register a member company's attendee for an event (the operator, or the company's cluster)."""
    if await store.get(runtime, store.EVENTS, event_id) is None:
        raise not_found("event", event_id)
    company = await store.get(runtime, store.COMPANIES, body.company_id)
    if company is None or not caller.may_act_for(company["data"]["cluster_id"]):
        raise unknown("company_id", "company", body.company_id)
    data = body.model_dump(mode="json")
    stored = await register(
        response,
        runtime,
        store.PARTICIPANTS,
        f"{event_id}:{body.company_id}:{body.attendee.email.casefold()}",
        data,
        lambda new_id: ParticipantRegistered(
            participant_id=new_id,
            event_id=event_id,
            company_id=body.company_id,
            cluster_id=company["data"]["cluster_id"],
            attendee=Attendee(**data["attendee"]),
            consent_share_contact=body.consent_share_contact,
        ),
        correlation,
        extra={"event_id": event_id},
    )
    return ParticipantOut(**stored.data, id=stored.id, created=stored.created, event_id=event_id)


@router.get("/events/{event_id}/participants", tags=["participants"])
async def list_participants(
    event_id: str, runtime: RuntimeDep, _: auth.Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, str]]:
    """Who takes part (ids only: attendees' contact data is not listed)."""
    docs = await runtime.db[store.PARTICIPANTS].find({"event_id": event_id}).limit(limit).to_list(None)
    return [{"id": d["_id"], "company_id": d["data"]["company_id"]} for d in docs]
