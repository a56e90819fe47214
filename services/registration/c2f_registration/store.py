"""Registration's own collections, and registering, changing and erasing things exactly once.

Each registration has a natural key (a cluster's short name, a company's name in
its cluster, an event's host, name and start, a participant's e-mail at an
event). Posting the same registration again returns the stored one and
publishes nothing; different data under the same natural key is a conflict.
Every change and the event announcing it commit in one transaction (outbox).
"""

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from c2f_registration.errors import Conflict
from c2f_shared.events import Event
from c2f_shared.service import Runtime, UnitOfWork

CLUSTERS = "clusters"
COMPANIES = "companies"
EVENTS = "events"
PARTICIPANTS = "participants"
ERASURES = "erasures"
AGREEMENTS = "agreements"

OnCreated = Callable[[UnitOfWork, str], Awaitable[Any]]

__all__ = [
    "Conflict",
    "Stored",
    "fingerprint",
    "get",
    "local_cluster",
    "new_id",
    "register_once",
    "replace",
    "serves",
]


@dataclass(frozen=True)
class Stored:
    id: str
    data: dict[str, Any]
    created: bool
    doc: dict[str, Any]
    extra: Any = None


async def ensure_indexes(runtime: Runtime) -> None:
    for name in (CLUSTERS, COMPANIES, EVENTS, PARTICIPANTS, AGREEMENTS):
        await runtime.db[name].create_index("natural_key", unique=True)
    await runtime.db[COMPANIES].create_index("data.cluster_id")
    await runtime.db[PARTICIPANTS].create_index([("event_id", 1), ("created_at", 1), ("_id", 1)])  # lists
    await runtime.db[PARTICIPANTS].create_index("data.company_id")


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def register_once(
    runtime: Runtime,
    collection: str,
    natural_key: str,
    data: dict[str, Any],
    make_event: Callable[[str], Event],
    correlation_id: str,
    extra: dict[str, Any] | None = None,
    on_created: OnCreated | None = None,
) -> Stored:
    """Store `data` under a new id and emit `make_event(id)`, unless it is already there.

    `on_created` runs in the same transaction when, and only when, it is new. The unique
    index on the natural key decides what is new: the insert is tried first, and only when
    the key is taken is the stored registration read and compared (most registrations are
    new, and save a read this way).
    """
    digest = fingerprint(data)

    async def work(uow: UnitOfWork) -> Stored:
        item_id = new_id()
        now = datetime.now(UTC)
        doc = {
            "_id": item_id,
            "natural_key": natural_key,
            "fingerprint": digest,
            "data": data,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
            **(extra or {}),
        }
        await uow.db[collection].insert_one(doc)
        uow.emit(make_event(item_id))
        more = await on_created(uow, item_id) if on_created else None
        return Stored(id=item_id, data=data, created=True, doc=doc, extra=more)

    for _ in range(3):
        try:
            return await runtime.transact(work, correlation_id)
        except DuplicateKeyError:
            pass  # the key is taken (the transaction was rolled back): by the same data?
        existing = await runtime.db[collection].find_one({"natural_key": natural_key})
        if existing is not None:
            if existing["fingerprint"] != digest:
                known = existing["_id"]
                raise Conflict(f"{natural_key!r} is already registered with different data (id {known})")
            return Stored(id=existing["_id"], data=existing["data"], created=False, doc=existing)
        # Gone again meanwhile (erased): try once more.
    raise Conflict(f"{collection}: could not register {natural_key!r}, try again")


async def replace(
    runtime: Runtime,
    collection: str,
    doc: dict[str, Any],
    natural_key: str,
    data: dict[str, Any],
    make_event: Callable[[int], Event],
    correlation_id: str,
) -> tuple[dict[str, Any], bool]:
    """Replace `doc`'s data; emit `make_event(new revision)` when something changed.

    Optimistic: if someone else changed it since `doc` was read, this is a Conflict.
    """
    digest = fingerprint(data)
    if digest == doc["fingerprint"]:
        return doc, False
    revision = doc["revision"] + 1
    changes = {
        "natural_key": natural_key,
        "fingerprint": digest,
        "data": data,
        "revision": revision,
        "updated_at": datetime.now(UTC),
    }

    async def work(uow: UnitOfWork) -> None:
        result = await uow.db[collection].update_one(
            {"_id": doc["_id"], "revision": doc["revision"]}, {"$set": changes}
        )
        if result.matched_count == 0:
            raise Conflict("it was changed by someone else meanwhile: read it again and retry")
        uow.emit(make_event(revision))

    try:
        await runtime.transact(work, correlation_id)
    except DuplicateKeyError:
        raise Conflict(f"{natural_key!r} is already registered") from None
    return {**doc, **changes}, True


def new_id() -> str:
    """Ids are random UUIDs: unique across every registration instance without coordination."""
    return str(uuid.uuid4())


async def get(runtime: Runtime, collection: str, item_id: str) -> dict[str, Any] | None:
    return await runtime.db[collection].find_one({"_id": item_id})


# (database, cluster id) of the clusters found served here. A cluster is never erased, and
# one served here is never marked foreign (other instances' news only insert), so once
# served here it is for good: registrations need not read it again.
_served: set[tuple[str, str]] = set()


async def serves(runtime: Runtime, cluster_id: str) -> bool:
    """Whether this instance serves the cluster."""
    if (runtime.settings.mongo_db, cluster_id) in _served:
        return True
    if await local_cluster(runtime, cluster_id) is None:
        return False
    _served.add((runtime.settings.mongo_db, cluster_id))
    return True


async def local_cluster(runtime: Runtime, cluster_id: str) -> dict[str, Any] | None:
    """The cluster, if this instance serves it (not one it only heard of from another instance)."""
    doc = await get(runtime, CLUSTERS, cluster_id)
    return None if doc is None or doc.get("foreign") else doc
