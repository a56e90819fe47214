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
        notifications_sent=await db["notifications"].count_documents({}),
        dead_letters=await db["dead_letters"].count_documents({}),
    )
