"""Who is calling: the partnership's operator (its token), or a participant (its own access
token `c2fp.<participant id>.<secret>`, checked against the hash registration published).
Comparisons are timing-safe; tokens are never stored or logged."""

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from c2f_matching.store import PARTICIPANTS

OPERATOR = "operator"
_bearer = HTTPBearer(auto_error=False, description="A participant's access token, or the operator's token")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_operator(request: Request, token: str) -> bool:
    operator: str | None = request.app.state.operator_digest
    return operator is not None and hmac.compare_digest(_digest(token), operator)


async def _caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send a token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


Token = Annotated[str, Depends(_caller)]


def _owns(token: str, participant: dict[str, Any] | None) -> bool:
    prefix, _, rest = token.partition(".")
    pid, _, secret = rest.partition(".")
    stored = participant.get("token_hash") if participant else None
    return (
        prefix == "c2fp"
        and participant is not None
        and pid == participant["_id"]
        and stored is not None
        and hmac.compare_digest(_digest(secret), stored)
    )


async def may_see(request: Request, runtime: Any, token: str, participant_id: str) -> dict[str, Any]:
    """The participant, if `token` is its own access token or the operator's."""
    participant: dict[str, Any] | None = await runtime.db[PARTICIPANTS].find_one({"_id": participant_id})
    if participant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no participant {participant_id!r}")
    if is_operator(request, token) or _owns(token, participant):
        return participant
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is not this participant's")


async def participant_of(request: Request, runtime: Any, token: str) -> str:
    """The participant id the token belongs to, or OPERATOR; 403 for anything else."""
    if is_operator(request, token):
        return OPERATOR
    pid = token.split(".")[1] if token.count(".") == 2 else ""
    participant = await runtime.db[PARTICIPANTS].find_one({"_id": pid}) if pid else None
    if not _owns(token, participant):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this is neither a participant's token nor the operator's"
        )
    return pid


async def any_participant_or_operator(request: Request, runtime: Any, token: str) -> None:
    await participant_of(request, runtime, token)


def require_operator(request: Request, token: str, what: str) -> None:
    if not is_operator(request, token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only the partnership's operator may {what}")
