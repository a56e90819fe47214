"""Meeting requests and answers, the organiser's schedule, and each side's outcome."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from c2f_matching import meetings
from c2f_matching.api.access import OPERATOR, Token, is_operator, may_see, participant_of, require_operator
from c2f_matching.meetings import Refused
from c2f_matching.store import CLUSTERS, COMPANIES, MEETINGS, PARTICIPANTS, SCHEDULES
from c2f_shared.service import UnitOfWork
from c2f_shared.service.access import OPERATOR_ONLY, PARTICIPANT_OR_OPERATOR
from c2f_shared.service.http import CorrelationId, RuntimeDep
from c2f_shared.vocabulary import FollowUp, MeetingStatus

router = APIRouter()


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeetingRequestIn(_In):
    with_: Annotated[list[str], Field(min_length=1, max_length=10, alias="with")] = Field(
        description="The participant(s) to meet; more than one only at C2C events"
    )
    message: Annotated[str, Field(max_length=1000)] | None = None


class ActingFor(_In):
    participant_id: str | None = Field(
        None, description="The operator only: the participant on whose behalf to act"
    )


class OutcomeIn(ActingFor):
    held: bool = Field(description="Did the meeting take place (false: a no-show)?")
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    follow_up: FollowUp = FollowUp.NONE


class ScheduleIn(_In):
    seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        10.0, description="Time the solver may take; 0: the fast heuristic alone"
    )


class Party(BaseModel):
    participant_id: str
    name: str = Field(description="The company, or the cluster of a C2C delegation")
    country: str | None = None
    attendee: str | None = Field(None, description="The attendee's name, if they agreed to share it")


class Placement(BaseModel):
    slot_id: str = Field(description="Local start time at the venue, e.g. 2027-03-16T09:20")
    starts_at: datetime
    ends_at: datetime
    table: str


class MeetingOut(BaseModel):
    id: str
    event_id: str
    requested_by: str
    parties: list[Party]
    answers: dict[str, MeetingStatus]
    status: MeetingStatus
    message: str | None = None
    priority: int
    placement: Placement | None = None
    sequence: int = Field(description="Grows with every change of time or table (iCalendar SEQUENCE)")


class OutcomeOut(BaseModel):
    meeting_id: str
    participant_id: str
    held: bool
    rating: int | None
    follow_up: FollowUp
    revision: int


# The one place where a refusal of the meeting rules becomes an HTTP answer.
REFUSAL_STATUS: dict[type[Refused], int] = {
    meetings.NotFound: status.HTTP_404_NOT_FOUND,
    meetings.NotYours: status.HTTP_403_FORBIDDEN,
    meetings.NotNow: status.HTTP_409_CONFLICT,
    meetings.NotYet: status.HTTP_503_SERVICE_UNAVAILABLE,  # with Retry-After, as the busy database
}
RETRY_AFTER_S = 1


def refused(error: Refused) -> HTTPException | RequestValidationError:
    """A 422 naming the field for an invalid request, as FastAPI's own validation errors do;
    otherwise the status of the refusal's kind (409 for a kind not listed) with its detail."""
    if isinstance(error, meetings.Invalid):
        return RequestValidationError(
            [{"loc": ("body", error.field or "body"), "msg": error.detail, "type": "value_error"}]
        )
    code = next(
        (c for kind, c in REFUSAL_STATUS.items() if isinstance(error, kind)), status.HTTP_409_CONFLICT
    )
    retry = {"Retry-After": str(RETRY_AFTER_S)} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    return HTTPException(code, error.detail, headers=retry)


async def parties(db: Any, participant_ids: list[str]) -> dict[str, Party]:
    """Who each participant is, as the people it meets may see it (no contact data)."""
    found = await db[PARTICIPANTS].find({"_id": {"$in": participant_ids}}).to_list(None)
    company_ids = [p["company_id"] for p in found if p.get("company_id")]
    cluster_ids = [p["cluster_id"] for p in found if not p.get("company_id")]
    companies = {c["_id"]: c for c in await db[COMPANIES].find({"_id": {"$in": company_ids}}).to_list(None)}
    clusters = {c["_id"]: c for c in await db[CLUSTERS].find({"_id": {"$in": cluster_ids}}).to_list(None)}
    out = {}
    for p in found:
        if p.get("company_id"):
            company = companies.get(p["company_id"], {})
            name, country = company.get("legal_name", p["company_id"]), company.get("country")
        else:
            cluster = clusters.get(p.get("cluster_id", ""), {})
            name = f"{cluster.get('name', p.get('cluster_id'))} delegation"
            country = cluster.get("country")
        out[p["_id"]] = Party(participant_id=p["_id"], name=name, country=country, attendee=p.get("attendee"))
    return out


async def meetings_out(db: Any, docs: list[dict[str, Any]]) -> list[MeetingOut]:
    who = await parties(db, sorted({p for d in docs for p in d["parties"]}))
    return [
        MeetingOut(
            id=d["_id"],
            event_id=d["event_id"],
            requested_by=d["requested_by"],
            parties=[who.get(p) or Party(participant_id=p, name="(withdrawn)") for p in d["parties"]],
            answers=d["answers"],
            status=d["status"],
            message=d.get("message"),
            priority=d["priority"],
            placement=d.get("placement"),
            sequence=max(d.get("sequence", -1), 0),
        )
        for d in docs
    ]


async def _acting(
    request: Request, runtime: Any, token: str, body: ActingFor | None, alone: bool = False
) -> tuple[str, str]:
    """(participant acting, who did it): a participant acts for itself; the operator for the
    participant it names (or, where `alone`, as itself)."""
    caller = await participant_of(request, runtime, token)
    if caller == OPERATOR:
        if alone and (body is None or body.participant_id is None):
            return OPERATOR, OPERATOR
        if body is None or body.participant_id is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "participant_id"),
                        "msg": "the operator must name the participant",
                        "type": "missing",
                    }
                ]
            )
        return body.participant_id, OPERATOR
    if body is not None and body.participant_id not in (None, caller):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a participant acts only for itself")
    return caller, caller


MEETING_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not a party to this meeting"},
    404: {"description": "No such meeting"},
    409: {"description": "Not allowed in the meeting's present state (the detail says why)"},
}


@router.post(
    "/participants/{participant_id}/meetings",
    status_code=201,
    response_model=MeetingOut,
    tags=["meetings"],
    responses={
        **PARTICIPANT_OR_OPERATOR,
        200: {"description": "They had asked you already: this accepted their request"},
        409: {"description": "Already requested or declined, a cap reached, or requests closed"},
        422: {"description": "Yourself, a participant of another event, or too many parties"},
    },
)
async def request_meeting(
    participant_id: str,
    body: MeetingRequestIn,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    token: Token,
    correlation: CorrelationId,
) -> MeetingOut:
    """Ask other participants of the same event for a meeting (the participant's own token,
    or the operator's on its behalf). At events with auto-accept it is accepted at once."""
    requester = await may_see(request, runtime, token, participant_id)
    by = OPERATOR if is_operator(request, token) else participant_id

    async def work(uow: UnitOfWork) -> tuple[dict[str, Any], bool]:
        return await meetings.request(uow, requester, body.with_, body.message, by)

    try:
        doc, created = await runtime.transact(work, correlation)
    except Refused as error:
        raise refused(error) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return (await meetings_out(runtime.db, [doc]))[0]


@router.post(
    "/meetings/{meeting_id}/{action}", response_model=MeetingOut, tags=["meetings"], responses=MEETING_ERRORS
)
async def transition(
    meeting_id: str,
    action: Literal["accept", "decline", "cancel"],
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    correlation: CorrelationId,
    body: ActingFor | None = None,
) -> MeetingOut:
    """`accept` or `decline` a request you were invited to; `cancel` a request or an accepted
    meeting (either party, or the operator). A cancelled meeting leaves the schedule at once;
    no other meeting moves."""
    who, by = await _acting(request, runtime, token, body, alone=action == "cancel")

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        if action == "cancel":
            return await meetings.cancel(uow, meeting_id, who, by)
        return await meetings.answer(uow, meeting_id, who, action == "accept", by)

    try:
        doc = await runtime.transact(work, correlation)
    except Refused as error:
        raise refused(error) from None
    return (await meetings_out(runtime.db, [doc]))[0]


@router.get("/meetings/{meeting_id}", response_model=MeetingOut, tags=["meetings"], responses=MEETING_ERRORS)
async def get_meeting(meeting_id: str, request: Request, runtime: RuntimeDep, token: Token) -> MeetingOut:
    """One meeting (a party, or the operator)."""
    caller = await participant_of(request, runtime, token)
    doc = await runtime.db[MEETINGS].find_one({"_id": meeting_id})
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meeting {meeting_id!r}")
    if caller != OPERATOR and caller not in doc["parties"]:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not a party to this meeting")
    return (await meetings_out(runtime.db, [doc]))[0]


@router.get(
    "/participants/{participant_id}/meetings",
    response_model=list[MeetingOut],
    tags=["meetings"],
    responses=PARTICIPANT_OR_OPERATOR,
)
async def participant_meetings(
    participant_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    state: Annotated[MeetingStatus | None, Query(alias="status")] = None,
) -> list[MeetingOut]:
    """The participant's requests, sent and received, and its meetings."""
    await may_see(request, runtime, token, participant_id)
    query: dict[str, Any] = {"parties": participant_id}
    if state is not None:
        query["status"] = state.value
    docs = await runtime.db[MEETINGS].find(query).sort("created_at", 1).to_list(None)
    return await meetings_out(runtime.db, docs)


@router.put(
    "/meetings/{meeting_id}/outcome", response_model=OutcomeOut, tags=["meetings"], responses=MEETING_ERRORS
)
async def record_outcome(
    meeting_id: str,
    body: OutcomeIn,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    correlation: CorrelationId,
) -> OutcomeOut:
    """After the meeting: was it held, how was it, and what followed. Each side records its
    own; send it again whenever it changes (an agreement signed months later)."""
    who, _ = await _acting(request, runtime, token, body)

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        return await meetings.record_outcome(
            uow, meeting_id, who, body.held, body.rating, body.follow_up.value
        )

    try:
        doc = await runtime.transact(work, correlation)
    except Refused as error:
        raise refused(error) from None
    return OutcomeOut(**doc)


@router.get(
    "/events/{event_id}/meetings", response_model=list[MeetingOut], tags=["schedule"], responses=OPERATOR_ONLY
)
async def event_meetings(
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    state: Annotated[MeetingStatus | None, Query(alias="status")] = None,
) -> list[MeetingOut]:
    """Every meeting request of the event (operator)."""
    require_operator(request, token, "see every meeting of an event")
    query: dict[str, Any] = {"event_id": event_id}
    if state is not None:
        query["status"] = state.value
    docs = await runtime.db[MEETINGS].find(query).sort("created_at", 1).to_list(None)
    return await meetings_out(runtime.db, docs)


class ScheduleOut(BaseModel):
    event_id: str
    schedule_version: int = Field(description="0: nothing published yet")
    stale: bool = Field(False, description="Accepts, cancellations or availability changed since")
    accepted: int = 0
    scheduled: int = 0
    moved: int = 0
    unscheduled: int = 0
    idle_slots: int = 0
    method: str = ""
    proven_optimal: bool = False
    value: int | None = Field(
        None,
        description="What the schedule is worth: the meetings placed, each by its priority "
        "(a meeting of the published schedule counts extra, so that it is kept)",
    )
    bound: int | None = Field(
        None, description="No schedule of these meetings can be worth more (the linear relaxation's value)"
    )
    share_of_bound: float | None = Field(
        None, description="value ÷ bound: how close to the best possible this schedule is, at least"
    )
    seconds: float = 0.0
    meetings: list[MeetingOut] = []


@router.post(
    "/events/{event_id}/schedule",
    response_model=ScheduleOut,
    tags=["schedule"],
    responses={
        **OPERATOR_ONLY,
        404: {"description": "No such event"},
        409: {"description": "No slots, or meetings changed"},
    },
)
async def publish_schedule(
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    correlation: CorrelationId,
    body: ScheduleIn | None = None,
) -> ScheduleOut:
    """Schedule the event's accepted meetings (operator): as many as possible, by priority,
    then the fewest idle slots, within the time limit; a new version moves as few published
    meetings as it can. Publishes every meeting placed, moved or dropped."""
    require_operator(request, token, "publish a schedule")
    try:
        published = await meetings.publish_schedule(
            runtime, event_id, (body or ScheduleIn()).seconds, correlation
        )
    except Refused as error:
        raise refused(error) from None
    return ScheduleOut(**published)


@router.get(
    "/events/{event_id}/schedule", response_model=ScheduleOut, tags=["schedule"], responses=OPERATOR_ONLY
)
async def get_schedule(event_id: str, request: Request, runtime: RuntimeDep, token: Token) -> ScheduleOut:
    """The published schedule (operator): its figures and every placed meeting, in time order."""
    require_operator(request, token, "see the whole schedule")
    summary = await runtime.db[SCHEDULES].find_one({"_id": event_id}) or {"schedule_version": 0}
    docs = await runtime.db[MEETINGS].find({"event_id": event_id, "placement": {"$ne": None}}).to_list(None)
    docs.sort(key=lambda d: (d["placement"]["slot_id"], d["placement"]["table"]))
    fields = {k: v for k, v in summary.items() if k in ScheduleOut.model_fields and k != "event_id"}
    return ScheduleOut(event_id=event_id, **fields, meetings=await meetings_out(runtime.db, docs))
