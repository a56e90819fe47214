"""Multi-document writes outside a transaction, one statement per document.

SecantusDB (the embedded database) runs an `update_many` or `delete_many` outside a transaction
in chunks while holding the collection's lock, and retries a chunk that meets a write conflict
without letting go of that lock. A transaction that has written one of those documents and
wants the collection again waits for the lock: neither moves, and every other writer of the
collection queues behind them (seen under load: the whole notifications service stood still
for minutes). A single-document statement takes the lock for each attempt only, so the
transaction finishes and the statement's retry succeeds. MongoDB does neither; the cost there is
one round trip for the ids, and the statements go in one `bulk_write`.

Use this for every multi-document write outside a transaction to a collection transactions
also write; inside a unit of work `update_many` is fine.
"""

from typing import Any

from pymongo import UpdateOne

Filter = dict[str, Any]


async def update_singly(collection: Any, filter: Filter, update: Any, *, ids: list[Any] | None = None) -> int:
    """`update_many(filter, update)`, one document per statement, each matched by its id and
    `filter` again (so a document that changed meanwhile is left alone); how many changed.
    `ids`: the candidates, when the caller knows them (saves reading them first)."""
    if ids is None:
        ids = [d["_id"] async for d in collection.find(filter, {"_id": 1})]
    if not ids:
        return 0
    statements = [UpdateOne({**filter, "_id": i}, update) for i in ids]
    result = await collection.bulk_write(statements, ordered=False)
    return int(result.modified_count)
