"""Who is calling an HTTP endpoint: a bearer token, checked timing-safely against the
operator's (its SHA-256 on `app.state.operator_digest`) or against a participant's own
access token `c2fp.<participant id>.<secret>` (registration publishes only its SHA-256).
Tokens are never stored or logged."""

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

PARTICIPANT_TOKEN_PREFIX = "c2fp"
_bearer = HTTPBearer(auto_error=False, description="A participant's access token, or the operator's token")

# The answers of these checks, for routes' `responses=` (a missing token, 401, is documented
# for every route that takes one: see c2f_shared.service.http).
OPERATOR_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "The token is not the operator's"}}
PARTICIPANT_OR_OPERATOR: dict[int | str, dict[str, Any]] = {
    403: {"description": "The token is neither this participant's own nor the operator's"},
    404: {"description": "No such participant"},
}
SIGNED_LINK: dict[int | str, dict[str, Any]] = {
    403: {"description": "The link is not genuine, has expired, or is for something else"}
}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def operator_digest(token: SecretStr | None) -> str | None:
    """What `app.state.operator_digest` holds: the operator token's hash, never the token."""
    return digest(token.get_secret_value()) if token else None


async def _bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send a token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


Token = Annotated[str, Depends(_bearer_token)]


def is_operator(request: Request, token: str) -> bool:
    operator: str | None = request.app.state.operator_digest
    return operator is not None and hmac.compare_digest(digest(token), operator)


def require_operator(request: Request, token: str, what: str) -> None:
    if not is_operator(request, token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only the partnership's operator may {what}")


def token_participant(token: str) -> str | None:
    """The participant id a participant token names (not yet checked)."""
    prefix, _, rest = token.partition(".")
    pid, _, secret = rest.partition(".")
    return pid if prefix == PARTICIPANT_TOKEN_PREFIX and pid and secret else None


def owns(token: str, participant_id: str, stored_hash: str | None) -> bool:
    """Is `token` the participant's own access token?"""
    secret = token.split(".", 2)[-1]
    return (
        token_participant(token) == participant_id
        and stored_hash is not None
        and hmac.compare_digest(digest(secret), stored_hash)
    )
