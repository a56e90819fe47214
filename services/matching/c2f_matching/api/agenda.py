"""A participant's agenda: JSON, an .ics calendar, and a printable page."""

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse

from c2f_matching import agenda as render
from c2f_matching.agenda import Agenda, AgendaItem
from c2f_matching.api.access import Token, may_see
from c2f_matching.api.meetings import parties
from c2f_matching.profiles import known_event
from c2f_matching.store import EVENTS, MEETINGS
from c2f_shared.service.access import PARTICIPANT_OR_OPERATOR
from c2f_shared.service.http import RuntimeDep

router = APIRouter()
NOT_YOURS: dict[int | str, dict[str, Any]] = {
    **PARTICIPANT_OR_OPERATOR,
    404: {"description": "No such participant, or its event is not known yet"},
}


async def _agenda(request: Request, runtime: Any, token: str, participant_id: str) -> Agenda:
    participant = await may_see(request, runtime, token, participant_id)
    event = await runtime.db[EVENTS].find_one({"_id": participant["event_id"]})
    if event is None or not known_event(event):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the participant's event is not known yet")
    zone = ZoneInfo(event.get("venue_timezone") or "UTC")
    docs = (
        await runtime.db[MEETINGS]
        .find(
            {
                "parties": participant_id,
                "$or": [{"status": "accepted"}, {"last_placement": {"$exists": True}}],
            }
        )
        .to_list(None)
    )
    who = await parties(runtime.db, sorted({p for d in docs for p in d["parties"]} | {participant_id}))
    items = []
    for d in docs:
        placed = d.get("placement")
        if placed is not None:
            state = "scheduled"
        elif d["status"] == "accepted":
            state = "waiting"
        else:
            state, placed = "cancelled", d.get("last_placement")
        item: dict[str, Any] = {
            "meeting_id": d["_id"],
            "status": state,
            "with": [who[p].model_dump() for p in d["parties"] if p != participant_id and p in who],
            "message": d.get("message"),
            "sequence": max(d.get("sequence", 0), 0),
        }
        if placed is not None:
            starts, ends = placed["starts_at"], placed["ends_at"]
            starts, ends = (t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC")) for t in (starts, ends))
            item |= {
                "starts_at": starts,
                "ends_at": ends,
                "local_start": starts.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "local_end": ends.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "table": placed["table"],
            }
        items.append(AgendaItem.model_validate(item))
    items.sort(key=lambda i: (i.starts_at.timestamp() if i.starts_at else float("inf"), i.meeting_id))
    return Agenda(
        participant_id=participant_id,
        name=who[participant_id].name if participant_id in who else participant_id,
        event_id=event["_id"],
        event_name=event.get("name", event["_id"]),
        venue=event.get("venue"),
        city=event.get("city"),
        timezone=str(zone),
        link=event.get("link"),
        items=items,
    )


@router.get(
    "/participants/{participant_id}/agenda", response_model=Agenda, tags=["agenda"], responses=NOT_YOURS
)
async def agenda_json(participant_id: str, request: Request, runtime: RuntimeDep, token: Token) -> Agenda:
    """The participant's meetings in time order, with venue times and tables; accepted
    meetings not yet scheduled come last ("waiting"); called-off ones as "cancelled"."""
    return await _agenda(request, runtime, token, participant_id)


@router.get(
    "/participants/{participant_id}/agenda.ics",
    tags=["agenda"],
    response_class=Response,
    responses={**NOT_YOURS, 200: {"content": {"text/calendar": {}}, "description": "An iCalendar file"}},
)
async def agenda_ics(participant_id: str, request: Request, runtime: RuntimeDep, token: Token) -> Response:
    """The agenda as an iCalendar file: one event per meeting, in the venue's time zone, with
    stable UIDs; SEQUENCE grows when a meeting moves; called-off meetings are CANCELLED."""
    agenda = await _agenda(request, runtime, token, participant_id)
    return Response(
        render.ics(agenda),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="agenda-{participant_id}.ics"'},
    )


@router.get(
    "/participants/{participant_id}/agenda.html",
    tags=["agenda"],
    response_class=HTMLResponse,
    responses=NOT_YOURS,
)
async def agenda_html(
    participant_id: str, request: Request, runtime: RuntimeDep, token: Token
) -> HTMLResponse:
    """The agenda as one printable page (print it, or save it as PDF, before the day)."""
    return HTMLResponse(render.html(await _agenda(request, runtime, token, participant_id)))
