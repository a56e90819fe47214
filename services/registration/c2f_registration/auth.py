"""Who is calling: the partnership's operator, or one cluster through one of its API keys.

Keys look like `c2fk.<key id>.<secret>`; only a SHA-256 hash of the secret is
stored, so a key is shown once, when it is made. A cluster's key acts for that
cluster only.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from c2f_shared.service.http import RuntimeDep

API_KEYS = "api_keys"
KEY_PREFIX = "c2fk"

_bearer = HTTPBearer(auto_error=False, description="An operator token or a cluster API key")


@dataclass(frozen=True)
class Principal:
    """The caller: `cluster_id` is None for the operator."""

    cluster_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.cluster_id is None

    def may_act_for(self, cluster_id: str) -> bool:
        return self.is_operator or self.cluster_id == cluster_id


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


async def new_api_key(db: Any, cluster_id: str, session: Any = None) -> dict[str, Any]:
    """Make and store a key for `cluster_id`; the answer holds the only copy of the secret."""
    key_id = uuid.uuid4().hex[:16]
    secret = secrets.token_urlsafe(32)
    created_at = datetime.now(UTC)
    await db[API_KEYS].insert_one(
        {
            "_id": key_id,
            "cluster_id": cluster_id,
            "hash": digest(secret),
            "created_at": created_at,
            "revoked_at": None,
        },
        session=session,
    )
    return {
        "id": key_id,
        "key": f"{KEY_PREFIX}.{key_id}.{secret}",
        "cluster_id": cluster_id,
        "created_at": created_at,
    }


async def principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("send an operator token or a cluster API key as 'Authorization: Bearer <token>'")
    token = credentials.credentials
    if token.startswith(f"{KEY_PREFIX}."):
        _, key_id, secret = [*token.split(".", 2), "", ""][:3]
        key = await runtime.db[API_KEYS].find_one({"_id": key_id})
        if key is None or not hmac.compare_digest(key["hash"], digest(secret)):
            raise _unauthorized("unknown API key")
        if key["revoked_at"] is not None:
            raise _unauthorized("this API key was revoked")
        return Principal(cluster_id=key["cluster_id"])
    operator_digest: str | None = request.app.state.operator_digest
    if operator_digest is not None and hmac.compare_digest(digest(token), operator_digest):
        return Principal(cluster_id=None)
    raise _unauthorized("unknown token")


Caller = Annotated[Principal, Depends(principal)]


def require_operator(caller: Caller) -> Principal:
    if not caller.is_operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the partnership's operator may do this")
    return caller


Operator = Annotated[Principal, Depends(require_operator)]


def require_may_act_for(caller: Principal, cluster_id: str) -> None:
    """403 when `caller` may not change `cluster_id`'s data."""
    if not caller.may_act_for(cluster_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an API key acts only for its own cluster")
