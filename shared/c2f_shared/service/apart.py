"""Writes to many documents outside any unit of work, each in a transaction of its own.

SecantusDB (the embedded database) treats a multi-document write outside a transaction badly
in two ways:
- it runs an `update_many` in chunks while holding the collection's lock, and retries a chunk
  that met a transaction's write without letting go of that lock; the transaction, wanting the
  collection again, waits for the lock: neither moves, and every other writer of the collection
  queues behind them (under load this stood the notifications service still for minutes);
- a plain statement that meets a transaction's write is retried inside the server without
  limit, and a transaction whose client died (kill -9) is aborted only when some transaction
  statement reaches the server after it has been idle 60 s: on a platform with nothing else
  going on, a lease release waiting for it waited forever.
Inside a transaction a conflict is answered at once (PyMongo's `with_transaction` tries again,
with backoff) and every attempt lets the server reap abandoned transactions. MongoDB does
neither; there the cost is a commit.

Use this for every multi-document write outside a unit of work to a collection that
transactions also write: lease releases, claims, the outbox's marks.
"""

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from c2f_shared.service.sessions import transaction_session

Filter = dict[str, Any]


async def update_apart(collection: Any, filter: Filter, update: Any, *, ids: list[Any] | None = None) -> int:
    """`update_many(filter, update)` in a transaction of its own; how many changed. `ids`:
    only these documents (those still matching `filter`).

    With `ids` and a filter of plain equalities (`{"status": "pending"}`), the documents are
    read by id and the filter checked here, then updated by id alone, in the same transaction:
    SecantusDB looks an `_id`-only filter up by key, but plans `_id` with another field on that
    field's index, walking every document it holds (1 s per 100 documents instead of 0.17 s
    with 3,000 pending, docs/benchmarks.md). A change to one of them meanwhile makes the commit
    fail, and the transaction runs again."""
    if ids is not None and not ids:
        return 0
    by_key = ids is not None and all(_plain(key, value) for key, value in filter.items())

    async def work(session: AsyncClientSession) -> int:
        if ids is not None and not filter:  # nothing to check: by id alone, without reading them
            result = await collection.update_many({"_id": {"$in": ids}}, update, session=session)
        elif by_key:
            found = collection.find({"_id": {"$in": ids}}, {key: 1 for key in filter}, session=session)
            still = [doc["_id"] async for doc in found if all(doc.get(k) == v for k, v in filter.items())]
            if not still:
                return 0
            result = await collection.update_many({"_id": {"$in": still}}, update, session=session)
        else:
            where = filter if ids is None else {**filter, "_id": {"$in": ids}}
            result = await collection.update_many(where, update, session=session)
        return int(result.modified_count)

    async with transaction_session(collection.database.client) as session:
        changed: int = await session.with_transaction(work)
    return changed


def _plain(key: str, value: Any) -> bool:
    """An equality this module can check on a document as read: a top-level field and a value
    that is no operator, list or null (which MongoDB matches in more ways than `==`)."""
    return "." not in key and not key.startswith("$") and not isinstance(value, dict | list | type(None))
