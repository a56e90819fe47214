"""Who is calling matching: the operator, or a participant with its own access token,
checked against the hash from ParticipantRegistered (see c2f_shared.service.access)."""

from typing import Any

from fastapi import HTTPException, Request, status

from c2f_matching.store import PARTICIPANTS
from c2f_shared.service.access import Token, is_operator, owns, require_operator, token_participant

OPERATOR = "operator"

__all__ = ["OPERATOR", "Token", "is_operator", "may_see", "participant_of", "require_operator"]


async def may_see(request: Request, runtime: Any, token: str, participant_id: str) -> dict[str, Any]:
    """The participant, if `token` is its own access token or the operator's."""
    participant: dict[str, Any] | None = await runtime.db[PARTICIPANTS].find_one({"_id": participant_id})
    if participant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no participant {participant_id!r}")
    if is_operator(request, token) or owns(token, participant_id, participant.get("token_hash")):
        return participant
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is not this participant's")


async def participant_of(request: Request, runtime: Any, token: str) -> str:
    """The participant id the token belongs to, or OPERATOR; 403 for anything else."""
    if is_operator(request, token):
        return OPERATOR
    pid = token_participant(token)
    participant = await runtime.db[PARTICIPANTS].find_one({"_id": pid}) if pid else None
    if pid is None or participant is None or not owns(token, pid, participant.get("token_hash")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this is neither a participant's token nor the operator's"
        )
    return pid


async def any_participant_or_operator(request: Request, runtime: Any, token: str) -> None:
    await participant_of(request, runtime, token)
