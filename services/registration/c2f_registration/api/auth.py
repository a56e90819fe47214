"""Who is calling, over HTTP: the partnership's operator (by its token), or one cluster
through one of its API keys (see `api_keys`). A request without a known token is a 401."""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from c2f_registration import api_keys
from c2f_registration.api_keys import KEY_PREFIX, OPERATOR, Principal, digest
from c2f_shared.service.http import RuntimeDep

__all__ = ["Caller", "Operator", "Principal", "digest", "principal"]

_bearer = HTTPBearer(auto_error=False, description="An operator token or a cluster API key")


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


async def principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("send an operator token or a cluster API key as 'Authorization: Bearer <token>'")
    token = credentials.credentials
    if token.startswith(f"{KEY_PREFIX}."):
        try:
            return await api_keys.holder(runtime, token)
        except api_keys.UnknownKey as error:
            raise _unauthorized(str(error)) from None
    operator_digest: str | None = request.app.state.operator_digest
    if operator_digest is not None and hmac.compare_digest(digest(token), operator_digest):
        return OPERATOR
    raise _unauthorized("unknown token")


Caller = Annotated[Principal, Depends(principal)]


async def require_operator(caller: Caller) -> Principal:
    caller.require_operator()
    return caller


Operator = Annotated[Principal, Depends(require_operator)]
