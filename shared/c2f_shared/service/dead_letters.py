"""Dead letters: messages a consumer set aside, with the reason, and what an operator does with
them: list them, and re-drive one once its cause is fixed (`c2f dead-letters`). Every service
keeps them in its own `dead_letters` collection, announces each on the dead-letter topic
(reporting counts them) and serves these routes."""

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from c2f_shared.events import MessageDeadLettered
from c2f_shared.service.access import OPERATOR_ONLY, Token, require_operator
from c2f_shared.service.pipeline import Pipeline, PoisonMessage, Where
from c2f_shared.service.unit_of_work import Transactions, UnitOfWork

log = logging.getLogger(__name__)

COLLECTION = "dead_letters"


class StillFailing(Exception):
    """A re-driven dead letter failed again; it stays a dead letter."""


class DeadLetters:
    def __init__(
        self,
        service: str,
        db: AsyncDatabase[dict[str, Any]],
        transactions: Transactions,
        pipelines: Callable[[], list[Pipeline]],
    ) -> None:
        self._service = service
        self._letters = db[COLLECTION]
        self._transactions = transactions
        self._pipelines = pipelines

    async def ensure_indexes(self) -> None:
        await self._letters.create_index("at")

    async def count(self) -> int:
        return await self._letters.estimated_document_count()

    async def newest(self, *, redriven: bool, limit: int) -> list[dict[str, Any]]:
        """The newest first; `redriven`: also those already re-driven."""
        query = {} if redriven else {"redriven_at": None}
        return await self._letters.find(query).sort("at", -1).limit(limit).to_list(None)

    async def record(self, where: Where, reason: str, body: bytes) -> None:
        """Set the message at `where` aside with `reason` and announce it; once per place."""
        dead_letter_id = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{self._service}/{where.topic}/{where.partition}/{where.offset}")
        )
        payload = body.decode("utf-8", errors="replace")
        log.error("dead letter %s from %s: %s", dead_letter_id, where, reason)

        async def work(uow: UnitOfWork) -> None:
            await uow.db[COLLECTION].update_one(
                {"_id": dead_letter_id},
                {
                    "$setOnInsert": {
                        "topic": where.topic,
                        "partition": where.partition,
                        "offset": where.offset,
                        "reason": reason,
                        "payload": payload,
                        "at": datetime.now(UTC),
                    }
                },
                upsert=True,
            )
            uow.emit(
                MessageDeadLettered(
                    dead_letter_id=dead_letter_id,
                    service=self._service,
                    topic=where.topic,
                    partition=where.partition,
                    offset=where.offset,
                    reason=reason,
                    payload=payload[:10_000],
                ),
                event_id=dead_letter_id,
            )

        await self._transactions.transact(work)

    async def redrive(self, dead_letter_id: str) -> dict[str, Any]:
        """Process a dead letter again, through the consumer of its topic (after its cause was
        fixed). Returns the dead letter, marked re-driven with the outcome. Raises LookupError
        (no such dead letter), PoisonMessage (still unreadable) or StillFailing (the handler
        failed again); the dead letter then stays as it was. Re-driving twice does nothing more."""
        letter = await self._letters.find_one({"_id": dead_letter_id})
        if letter is None:
            raise LookupError(dead_letter_id)
        if letter.get("redriven_at") is not None:
            return letter
        pipeline = next((p for p in self._pipelines() if letter["topic"] in p.topics), None)
        if pipeline is None:
            raise PoisonMessage(f"{self._service} no longer consumes {letter['topic']}")
        try:
            outcome = await pipeline.process(letter["payload"].encode())
        except PoisonMessage:
            raise
        except Exception as error:
            raise StillFailing(f"{type(error).__name__}: {error}") from error
        log.info("re-drove dead letter %s: %s", dead_letter_id, outcome)
        marked: dict[str, Any] | None = await self._letters.find_one_and_update(
            {"_id": dead_letter_id},
            {"$set": {"redriven_at": datetime.now(UTC), "redrive_outcome": outcome}},
            return_document=ReturnDocument.AFTER,
        )
        return marked or letter


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


def _dead_letters(request: Request, token: str) -> DeadLetters:
    require_operator(request, token, "see or re-drive dead letters")
    letters: DeadLetters = request.app.state.runtime.dead_letters
    return letters


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
    letters = _dead_letters(request, token)
    return [_out(doc) for doc in await letters.newest(redriven=redriven, limit=limit)]


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
    letters = _dead_letters(request, token)
    try:
        return _out(await letters.redrive(dead_letter_id))
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {dead_letter_id} here") from None
    except PoisonMessage as still:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"still unreadable: {still}") from None
    except StillFailing as failing:
        raise HTTPException(status.HTTP_409_CONFLICT, f"failed again: {failing}") from None
