"""Partnership events (B2B, C2C, webinars) and the participants who sign up for them."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from c2f_registration import events, participants
from c2f_registration.api import auth
from c2f_registration.api.common import CREATED, MAX_OFFSET, NOT_YOUR_CLUSTER, created
from c2f_registration.schemas import (
    EventIn,
    EventOut,
    EventPatch,
    ParticipantIn,
    ParticipantOut,
    ParticipantPatch,
)
from c2f_shared.service.http import CorrelationId, RuntimeDep
from c2f_shared.vocabulary import EventKind

router = APIRouter()

NO_EVENT: dict[int | str, dict[str, Any]] = {404: {"description": "No such event"}}


def _event_out(doc: dict[str, Any], created: bool = False) -> EventOut:
    return EventOut(
        **doc["data"],
        id=doc["_id"],
        revision=doc["revision"],
        created=created,
        registered=doc.get("registered", 0),
        slots=doc.get("slots", []),
    )


@router.post("/events", status_code=201, response_model=EventOut, responses=CREATED, tags=["events"])
async def create_event(
    body: EventIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> EventOut:
    """Create a B2B, C2C or webinar event hosted by a cluster (the operator, or the host's key).
    B2B and C2C events list their meeting days, slots, breaks and tables under `meetings`."""
    stored = created(response, await events.create(runtime, caller, body, correlation))
    return _event_out(stored.doc, stored.created)


@router.get("/events", response_model=list[EventOut], tags=["events"])
async def list_events(
    runtime: RuntimeDep,
    _: auth.Caller,
    kind: EventKind | None = None,
    when: Annotated[Literal["upcoming", "past"] | None, Query(description="Relative to now")] = None,
) -> list[EventOut]:
    """Every partnership event, soonest first; past webinars keep their recordings listed."""
    return [_event_out(d) for d in await events.listing(runtime, kind, when)]


@router.get("/events/{event_id}", response_model=EventOut, responses=NO_EVENT, tags=["events"])
async def get_event(event_id: str, runtime: RuntimeDep, _: auth.Caller) -> EventOut:
    return _event_out(await events.get(runtime, event_id))


@router.patch(
    "/events/{event_id}",
    response_model=EventOut,
    responses={
        **NO_EVENT,
        **NOT_YOUR_CLUSTER,
        409: {"description": "Hosted by another instance, or the host has an event of this name then"},
    },
    tags=["events"],
)
async def update_event(
    event_id: str, body: EventPatch, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> EventOut:
    """Change an event (the operator, or the host's key), e.g. add a webinar's recording link."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    return _event_out(await events.update(runtime, caller, event_id, changes, correlation))


def _participant_out(doc: dict[str, Any], token: str | None = None) -> ParticipantOut:
    return ParticipantOut(
        **doc["data"],
        id=doc["_id"],
        event_id=doc["event_id"],
        cluster_id=doc["cluster_id"],
        status=doc.get("status", "registered"),
        access_token=token,
    )


@router.post(
    "/events/{event_id}/participants",
    status_code=201,
    response_model=ParticipantOut,
    responses={
        **NO_EVENT,
        **NOT_YOUR_CLUSTER,
        409: {
            "description": "Already registered (the detail names the participant), deadline passed, or full"
        },
        422: {"description": "Invalid input; `detail` names each field and the reason"},
    },
    tags=["participants"],
)
async def register_participant(
    event_id: str, body: ParticipantIn, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> ParticipantOut:
    """Sign up a member company (B2B, webinar) or a cluster delegation (C2C) for any partnership
    event, through the participant's own cluster. The answer carries the participant's access
    token, shown once."""
    signed_up = await participants.sign_up(runtime, caller, event_id, body, correlation)
    return _participant_out(signed_up.doc, token=signed_up.access_token)


@router.get("/events/{event_id}/participants", tags=["participants"], responses=NO_EVENT)
async def list_participants(
    event_id: str,
    runtime: RuntimeDep,
    caller: auth.Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many (in sign-up order)")] = 0,
) -> list[dict[str, Any]]:
    """Who takes part (ids only, no contact data), in sign-up order; page with `offset`. A
    cluster's key sees its own participants; the operator and the host see all."""
    return [
        {"id": d["_id"], "company_id": d["data"]["company_id"], "delegation_of": d["data"]["delegation_of"]}
        for d in await participants.listing(runtime, caller, event_id, limit, offset)
    ]


@router.delete(
    "/events/{event_id}/participants/{participant_id}",
    status_code=204,
    tags=["participants"],
    responses={404: {"description": "No such participant at this event"}},
)
async def withdraw_participant(
    event_id: str, participant_id: str, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> None:
    """Withdraw from the event; the place is freed and the participant may sign up again."""
    await participants.withdraw(runtime, caller, event_id, participant_id, correlation)


@router.patch(
    "/events/{event_id}/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    responses={404: {"description": "No such participant at this event"}},
)
async def update_participant(
    event_id: str,
    participant_id: str,
    body: ParticipantPatch,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    caller: auth.Caller,
) -> ParticipantOut:
    """Change when the participant can meet (slot ids), its languages or its most meetings.
    Matching reschedules what no longer fits, moving as few meetings as it can."""
    return _participant_out(
        await participants.update(runtime, caller, event_id, participant_id, body, correlation)
    )
