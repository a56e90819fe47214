"""Reporting's HTTP API: the partnership in numbers."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from c2f_shared.service.http import RuntimeDep

router = APIRouter(tags=["reports"])


class PartnershipReport(BaseModel):
    clusters: int
    agreements: int
    companies: int
    events: int
    participants: int
    match_suggestions: int
    meeting_requests: int = Field(description="Requests made (whatever became of them)")
    meetings_accepted: int
    meetings_scheduled: int
    meetings_held: int = Field(description="Meetings at least one side reported as held")
    notifications_sent: int
    dead_letters: int = Field(description="Messages a service could not process (see the logs).")


@router.get("/reports/partnership", response_model=PartnershipReport)
async def partnership(runtime: RuntimeDep) -> PartnershipReport:
    """Totals for the whole partnership, as of the last event reporting consumed."""
    db = runtime.db
    return PartnershipReport(
        clusters=await db["clusters"].count_documents({}),
        agreements=await db["agreements"].count_documents({}),
        companies=await db["companies"].count_documents({}),
        events=await db["events"].count_documents({}),
        participants=await db["participants"].count_documents({"status": "registered"}),
        match_suggestions=await db["match_suggestions"].count_documents({}),
        meeting_requests=await db["meetings"].count_documents({}),
        meetings_accepted=await db["meetings"].count_documents({"status": "accepted"}),
        meetings_scheduled=await db["meetings"].count_documents({"status": "accepted", "scheduled": True}),
        meetings_held=len(await db["outcomes"].distinct("meeting_id", {"held": True})),
        notifications_sent=await db["notifications"].count_documents({}),
        dead_letters=await db["dead_letters"].count_documents({}),
    )
