"""Registration's own collections, and registering a thing exactly once.

Each registration has a natural key (a cluster's short name, a company's name in
its cluster, an event's name and start, a participant's e-mail at an event).
Posting the same registration again returns the stored one and publishes nothing;
posting different data under the same natural key is a conflict.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from c2f_shared.events import Event
from c2f_shared.service import Runtime, UnitOfWork

CLUSTERS = "clusters"
COMPANIES = "companies"
EVENTS = "events"
PARTICIPANTS = "participants"


class Conflict(Exception):
    """Different data is already registered under the same natural key."""


@dataclass(frozen=True)
class Stored:
    id: str
    data: dict[str, Any]
    created: bool


async def ensure_indexes(runtime: Runtime) -> None:
    for name in (CLUSTERS, COMPANIES, EVENTS, PARTICIPANTS):
        await runtime.db[name].create_index("natural_key", unique=True)
    await runtime.db[COMPANIES].create_index("data.cluster_id")
    await runtime.db[PARTICIPANTS].create_index("event_id")


def _fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def register_once(
    runtime: Runtime,
    collection: str,
    natural_key: str,
    data: dict[str, Any],
    make_event: Callable[[str], Event],
    correlation_id: str,
    extra: dict[str, Any] | None = None,
) -> Stored:
    """Store `data` under a new id and emit `make_event(id)`, unless it is already there."""
    fingerprint = _fingerprint(data)
    for _ in range(3):
        try:
            async with runtime.unit_of_work(correlation_id) as uow:
                return await _register(
                    uow, collection, natural_key, data, fingerprint, make_event, extra or {}
                )
        except DuplicateKeyError:
            continue  # a concurrent identical request won the insert: read it on the next pass
    raise Conflict(f"{collection}: could not register {natural_key!r}, try again")


async def _register(
    uow: UnitOfWork,
    collection: str,
    natural_key: str,
    data: dict[str, Any],
    fingerprint: str,
    make_event: Callable[[str], Event],
    extra: dict[str, Any],
) -> Stored:
    coll = uow.db[collection]
    existing = await coll.find_one({"natural_key": natural_key}, session=uow.session)
    if existing is not None:
        if existing["fingerprint"] != fingerprint:
            raise Conflict(
                f"{natural_key!r} is already registered with different data (id {existing['_id']})"
            )
        return Stored(id=existing["_id"], data=existing["data"], created=False)
    new_id = str(uuid.uuid4())
    await coll.insert_one(
        {
            "_id": new_id,
            "natural_key": natural_key,
            "fingerprint": fingerprint,
            "data": data,
            "created_at": datetime.now(UTC),
            **extra,
        },
        session=uow.session,
    )
    uow.emit(make_event(new_id))
    return Stored(id=new_id, data=data, created=True)


async def get(runtime: Runtime, collection: str, item_id: str) -> dict[str, Any] | None:
    return await runtime.db[collection].find_one({"_id": item_id})
