"""The operator's view of a service's dead letters: list them, re-drive one once its cause
is fixed (`c2f dead-letters`). Every service serves these routes."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from c2f_shared.service.access import OPERATOR_ONLY, Token, require_operator
from c2f_shared.service.runtime import PoisonMessage, Runtime, StillFailing

router = APIRouter(tags=["operations"])


class DeadLetter(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int
    reason: str = Field(description="Why it was set aside")
    at: datetime
    payload: str = Field(description="The message as it arrived (its first 2,000 characters)")
    redriven_at: datetime | None = Field(None, description="When an operator re-drove it, if so")
    redrive_outcome: str | None = Field(
        None, description="processed, duplicate (it had been processed meanwhile) or ignored"
    )


def _out(doc: dict[str, Any]) -> DeadLetter:
    return DeadLetter(**{**doc, "id": doc["_id"], "payload": doc["payload"][:2000]})


def _runtime(request: Request, token: str) -> Runtime:
    require_operator(request, token, "see or re-drive dead letters")
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get(
    "/dead-letters",
    response_model=list[DeadLetter],
    summary="Messages this service set aside (operator)",
    responses=OPERATOR_ONLY,
)
async def dead_letters(
    request: Request,
    token: Token,
    redriven: Annotated[bool, Query(description="Also those already re-driven")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetter]:
    """The newest first."""
    runtime = _runtime(request, token)
    query = {} if redriven else {"redriven_at": None}
    docs = await runtime.db["dead_letters"].find(query).sort("at", -1).limit(limit).to_list(None)
    return [_out(doc) for doc in docs]


@router.post(
    "/dead-letters/{dead_letter_id}/redrive",
    response_model=DeadLetter,
    summary="Process a dead letter again (operator)",
    responses={
        **OPERATOR_ONLY,
        404: {"description": "No such dead letter here"},
        409: {"description": "It failed again; it stays a dead letter (the detail says why)"},
        422: {"description": "It is still unreadable (the detail says why)"},
    },
)
async def redrive(dead_letter_id: str, request: Request, token: Token) -> DeadLetter:
    """Feed the message to the consumer of its topic once more, after its cause was fixed
    (a new version of the service, data corrected at its source). Idempotent: a dead letter
    already re-driven is returned as it is, and an event processed meanwhile is not
    processed twice."""
    runtime = _runtime(request, token)
    try:
        return _out(await runtime.redrive(dead_letter_id))
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {dead_letter_id} here") from None
    except PoisonMessage as still:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"still unreadable: {still}") from None
    except StillFailing as failing:
        raise HTTPException(status.HTTP_409_CONFLICT, f"failed again: {failing}") from None
