"""Matching's HTTP API: the suggestions it has made."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from c2f_matching.handlers import SUGGESTIONS
from c2f_shared.service.http import RuntimeDep

router = APIRouter(tags=["suggestions"])
Limit = Annotated[int, Query(ge=1, le=500)]


def _out(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "suggestion_id": doc["_id"],
        "event_id": doc["event_id"],
        "parties": doc["parties"],
        "score": doc["score"],
        "reasons": doc["reasons"],
    }


@router.get("/events/{event_id}/suggestions")
async def event_suggestions(event_id: str, runtime: RuntimeDep, limit: Limit = 100) -> list[dict[str, Any]]:
    """Suggested meetings at an event, best first."""
    cursor = runtime.db[SUGGESTIONS].find({"event_id": event_id}).sort("score", -1).limit(limit)
    return [_out(d) async for d in cursor]


@router.get("/participants/{participant_id}/suggestions")
async def participant_suggestions(
    participant_id: str, runtime: RuntimeDep, limit: Limit = 20
) -> list[dict[str, Any]]:
    """Whom a participant should meet, best first."""
    cursor = runtime.db[SUGGESTIONS].find({"participant_ids": participant_id}).sort("score", -1).limit(limit)
    return [_out(d) async for d in cursor]
