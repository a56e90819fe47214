"""A cluster's API keys, and the caller a key stands for.

Keys look like `c2fk.<key id>.<secret>`; only a SHA-256 hash of the secret is
stored, so a key is shown once, when it is made. A cluster's key acts for that
cluster only; the partnership's operator acts for every cluster.
"""

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from c2f_registration import store
from c2f_registration.errors import Forbidden, NotFound
from c2f_shared.service import Runtime

API_KEYS = "api_keys"
KEY_PREFIX = "c2fk"


@dataclass(frozen=True)
class Principal:
    """The caller: `cluster_id` is None for the operator."""

    cluster_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.cluster_id is None

    def may_act_for(self, cluster_id: str) -> bool:
        return self.is_operator or self.cluster_id == cluster_id

    def require_may_act_for(self, cluster_id: str) -> None:
        if not self.may_act_for(cluster_id):
            raise Forbidden("an API key acts only for its own cluster")

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden("only the partnership's operator may do this")


OPERATOR = Principal(cluster_id=None)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UnknownKey(Exception):
    """The token is not a valid, unrevoked key; `str(error)` says which."""


# A key found is kept this long, so that a burst of requests with one key reads it once. A
# revocation is seen at once by the instance that made it, and by the others of the same
# database within this time.
KEPT_S = 1.0
_KEPT_MAX = 1024
_kept: dict[str, tuple[float, dict[str, Any]]] = {}  # key id -> (when read, its fields)
_revoked_here: set[str] = set()  # never kept again (a read in flight may have kept it unrevoked)
# key id -> its read under way: requests arriving together with one key wait for the same read
# (2,000 sign-ups at once with ten keys read them 3,900 times before).
_reading: "dict[str, asyncio.Future[dict[str, Any] | None]]" = {}


async def holder(runtime: Runtime, token: str) -> Principal:
    """The cluster whose key `token` is (a `c2fk.` token), or UnknownKey."""
    _, key_id, secret = [*token.split(".", 2), "", ""][:3]
    key = await _key(runtime, key_id)
    if key is None or not hmac.compare_digest(key["hash"], digest(secret)):
        raise UnknownKey("unknown API key")
    if key["revoked_at"] is not None:
        raise UnknownKey("this API key was revoked")
    return Principal(cluster_id=key["cluster_id"])


async def _key(runtime: Runtime, key_id: str) -> dict[str, Any] | None:
    if key_id in _revoked_here:
        return await _read(runtime, key_id)
    kept = _kept.get(key_id)
    if kept is not None and time.monotonic() - kept[0] < KEPT_S:
        return kept[1]
    reading = _reading.get(key_id)
    if reading is None or reading.get_loop() is not asyncio.get_running_loop():
        reading = _reading[key_id] = asyncio.ensure_future(_read(runtime, key_id))
        reading.add_done_callback(
            lambda done: _reading.pop(key_id, None) if _reading.get(key_id) is done else None
        )
    # Shielded: a request given up (its client gone) does not cancel the others' read.
    return await asyncio.shield(reading)


async def _read(runtime: Runtime, key_id: str) -> dict[str, Any] | None:
    read_at = time.monotonic()
    key = await runtime.db[API_KEYS].find_one({"_id": key_id}, {"hash": 1, "cluster_id": 1, "revoked_at": 1})
    if key is None:  # unknown ids are not kept: they are asked for every time
        _kept.pop(key_id, None)
        return None
    if key_id in _revoked_here:
        return key
    if len(_kept) >= _KEPT_MAX:
        _kept.clear()
    _kept[key_id] = (read_at, key)
    return key


async def new_api_key(db: Any, cluster_id: str) -> dict[str, Any]:
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
    )
    return {
        "id": key_id,
        "key": f"{KEY_PREFIX}.{key_id}.{secret}",
        "cluster_id": cluster_id,
        "created_at": created_at,
    }


async def own_cluster(runtime: Runtime, caller: Principal, cluster_id: str) -> None:
    """Forbidden unless `caller` acts for the cluster; NotFound unless this instance serves it."""
    caller.require_may_act_for(cluster_id)
    if not await store.serves(runtime, cluster_id):
        raise NotFound("cluster served here", cluster_id)


async def create(runtime: Runtime, caller: Principal, cluster_id: str) -> dict[str, Any]:
    """A new key for the cluster (to rotate: make a new one, switch, revoke the old one)."""
    await own_cluster(runtime, caller, cluster_id)
    return await new_api_key(runtime.db, cluster_id)


async def listing(runtime: Runtime, caller: Principal, cluster_id: str) -> list[dict[str, Any]]:
    """The cluster's keys as stored (the hashes are the caller's to leave out), oldest first."""
    await own_cluster(runtime, caller, cluster_id)
    return await runtime.db[API_KEYS].find({"cluster_id": cluster_id}).sort("created_at").to_list(None)


async def revoke(runtime: Runtime, caller: Principal, cluster_id: str, key_id: str) -> None:
    """Revoke a key: it stops working at once. Revoking it again does nothing."""
    await own_cluster(runtime, caller, cluster_id)
    _revoked_here.add(key_id)
    _kept.pop(key_id, None)
    result = await runtime.db[API_KEYS].update_one(
        {"_id": key_id, "cluster_id": cluster_id, "revoked_at": None},
        {"$set": {"revoked_at": datetime.now(UTC)}},
    )
    if result.matched_count == 0 and not await runtime.db[API_KEYS].find_one(
        {"_id": key_id, "cluster_id": cluster_id}
    ):
        raise NotFound("API key", key_id)
