"""Notifications' HTTP API: what was queued and sent (no contact data)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from c2f_notifications.handlers import OUTGOING
from c2f_shared.service.http import RuntimeDep

router = APIRouter(tags=["outgoing"])


@router.get("/outgoing/summary")
async def summary(runtime: RuntimeDep) -> dict[str, int]:
    """How many messages are pending, being sent, sent and failed."""
    counts = {"pending": 0, "sending": 0, "sent": 0, "failed": 0, "cancelled": 0}
    async for row in await runtime.db[OUTGOING].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
        counts[row["_id"]] = row["n"]
    return counts


@router.get("/outgoing")
async def list_outgoing(
    runtime: RuntimeDep,
    status: Literal["pending", "sending", "sent", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Queued messages, newest first: kind, recipient id, status, attempts, last failure."""
    query = {"status": status} if status else {}
    cursor = runtime.db[OUTGOING].find(query, {"fact": 0}).sort("created_at", -1).limit(limit)
    return [{**doc, "id": doc.pop("_id")} async for doc in cursor]
