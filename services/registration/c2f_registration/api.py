"""Registration's HTTP API: thin routes that validate, register once and answer."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError

from c2f_registration import store
from c2f_registration.schemas import (
    ClusterIn,
    ClusterOut,
    CompanyIn,
    CompanyOut,
    EventIn,
    EventOut,
    ParticipantIn,
    ParticipantOut,
)
from c2f_shared.events import (
    Attendee,
    ClusterRegistered,
    CompanyRegistered,
    EventCreated,
    Need,
    Offer,
    ParticipantRegistered,
)
from c2f_shared.service import Runtime
from c2f_shared.service.http import CorrelationId, RuntimeDep

router = APIRouter()

CREATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Already registered with identical data; nothing new was published"},
    409: {"description": "Different data is already registered under the same natural key"},
    422: {"description": "Invalid input; `detail` names each field and the reason"},
}


def _unknown(field: str, what: str, value: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", field), "msg": f"unknown {what} {value!r}", "type": "value_error.unknown"}]
    )


async def _register(
    response: Response,
    runtime: Runtime,
    collection: str,
    natural_key: str,
    data: dict[str, Any],
    make_event: Any,
    correlation: str,
    extra: dict[str, Any] | None = None,
) -> store.Stored:
    try:
        stored = await store.register_once(
            runtime, collection, natural_key, data, make_event, correlation, extra
        )
    except store.Conflict as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, str(conflict)) from None
    response.status_code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return stored


@router.post("/clusters", status_code=201, response_model=ClusterOut, responses=CREATED, tags=["clusters"])
async def register_cluster(
    body: ClusterIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId
) -> ClusterOut:
    """Register a cluster of the partnership (founding, or joined by agreement)."""
    data = body.model_dump(mode="json")
    stored = await _register(
        response,
        runtime,
        store.CLUSTERS,
        body.short_name.casefold(),
        data,
        lambda new_id: ClusterRegistered(cluster_id=new_id, **data),
        correlation,
    )
    return ClusterOut(**stored.data, id=stored.id, created=stored.created)


@router.get("/clusters", response_model=list[ClusterOut], tags=["clusters"])
async def list_clusters(runtime: RuntimeDep) -> list[ClusterOut]:
    docs = await runtime.db[store.CLUSTERS].find().sort("created_at").to_list(None)
    return [ClusterOut(**d["data"], id=d["_id"], created=False) for d in docs]


@router.post("/companies", status_code=201, response_model=CompanyOut, responses=CREATED, tags=["companies"])
async def register_company(
    body: CompanyIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId
) -> CompanyOut:
    """Register a member company with its offers, needs and target markets."""
    if await store.get(runtime, store.CLUSTERS, body.cluster_id) is None:
        raise _unknown("cluster_id", "cluster", body.cluster_id)
    data = body.model_dump(mode="json")
    stored = await _register(
        response,
        runtime,
        store.COMPANIES,
        f"{body.cluster_id}:{body.legal_name.casefold()}",
        data,
        lambda new_id: CompanyRegistered(
            company_id=new_id,
            **{k: v for k, v in data.items() if k not in ("offers", "needs")},
            offers=[Offer(**o) for o in data["offers"]],
            needs=[Need(**n) for n in data["needs"]],
        ),
        correlation,
    )
    return CompanyOut(**stored.data, id=stored.id, created=stored.created)


@router.get("/companies/{company_id}", response_model=CompanyOut, tags=["companies"])
async def get_company(company_id: str, runtime: RuntimeDep) -> CompanyOut:
    doc = await store.get(runtime, store.COMPANIES, company_id)
    if doc is None:
        raise HTTPException(404, f"no company {company_id!r}")
    return CompanyOut(**doc["data"], id=doc["_id"], created=False)


@router.post("/events", status_code=201, response_model=EventOut, responses=CREATED, tags=["events"])
async def create_event(
    body: EventIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId
) -> EventOut:
    """Create a B2B or C2C matchmaking event hosted by a cluster."""
    if await store.get(runtime, store.CLUSTERS, body.host_cluster_id) is None:
        raise _unknown("host_cluster_id", "cluster", body.host_cluster_id)
    data = body.model_dump(mode="json")
    stored = await _register(
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
async def list_events(runtime: RuntimeDep) -> list[EventOut]:
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
) -> ParticipantOut:
    """Register a member company's attendee for an event."""
    if await store.get(runtime, store.EVENTS, event_id) is None:
        raise HTTPException(404, f"no event {event_id!r}")
    company = await store.get(runtime, store.COMPANIES, body.company_id)
    if company is None:
        raise _unknown("company_id", "company", body.company_id)
    data = body.model_dump(mode="json")
    stored = await _register(
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
    event_id: str, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, str]]:
    """Who takes part (ids only: attendees' contact data is not listed)."""
    docs = await runtime.db[store.PARTICIPANTS].find({"event_id": event_id}).limit(limit).to_list(None)
    return [{"id": d["_id"], "company_id": d["data"]["company_id"]} for d in docs]
