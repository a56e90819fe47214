"""The unit of work: one MongoDB transaction holding a state change, the events it causes
(the outbox) and, for consumers, the record that the incoming event was processed (the inbox).

Code inside a unit of work reaches the database only through `uow.db[name]`, whose collections
are bound to the transaction's session: nothing can be written outside the transaction by
forgetting `session=`. `Transactions.transact` runs a piece of work with PyMongo's
`with_transaction`, which starts it again after a write conflict (TransientTransactionError)
and retries a commit whose outcome is unknown (UnknownTransactionCommitResult).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from pymongo import AsyncMongoClient, DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.results import BulkWriteResult, DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from c2f_shared.envelope import Envelope
from c2f_shared.events import Event
from c2f_shared.service import tracing
from c2f_shared.service.sessions import transaction_session

Document = dict[str, Any]
Filter = Mapping[str, Any]
WriteRequest = InsertOne[Document] | UpdateOne | UpdateMany | ReplaceOne[Document] | DeleteOne | DeleteMany
T = TypeVar("T")


class Collection:
    """A collection bound to one transaction: every call runs in the unit of work's session.

    `write_later` keeps a write to send with the others of the unit of work in one `bulk_write`
    per collection (a batch of messages costs the database one statement there, not one per
    message). Every other call on the collection sends what is kept first, so reads and writes
    see them in order; the unit of work sends the rest before it commits."""

    def __init__(
        self, collection: AsyncCollection[Document], session: AsyncClientSession, database: Database
    ) -> None:
        self._collection = collection
        self._session = session
        self._database = database

    @property
    def name(self) -> str:
        return self._collection.name

    def _bound(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        given = kwargs.pop("session", None)
        if given is not None and given is not self._session:
            raise ValueError(f"{self.name}: a unit of work's collection runs in its own session only")
        return {**kwargs, "session": self._session}

    def write_later(self, request: WriteRequest) -> None:
        """Send `request` (pymongo's UpdateOne, InsertOne, ReplaceOne, DeleteOne...) with the
        unit of work's other writes to this collection, before anything else reads or writes it,
        and at the latest before the commit. For writes whose result nobody needs."""
        self._database.pending.setdefault(self.name, []).append(request)

    def insert_later(self, document: Document) -> None:
        """`write_later` for a document to insert unless one with its `_id` is stored (an
        upsert with `$setOnInsert` alone), sent with the others as `insert_absent`."""
        self._database.pending.setdefault(self.name, []).append(_Absent(document))

    async def insert_absent(self, documents: Sequence[Document]) -> list[Document]:
        """Insert those of `documents` whose `_id` is not stored yet (see `insert_absent`)."""
        await self._sent()
        return await insert_absent(self._collection, documents, self._session)

    async def _sent(self) -> None:
        await self._database.send(self.name)

    async def find_one(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> Document | None:
        await self._sent()
        return await self._collection.find_one(filter, *args, **self._bound(kwargs))

    def find(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> AsyncCursor[Document]:
        cursor = self._collection.find(filter, *args, **self._bound(kwargs))
        if self.name in self._database.pending:
            return cast(AsyncCursor[Document], _SentFirst(cursor, self._sent))
        return cursor

    async def count_documents(self, filter: Filter, **kwargs: Any) -> int:
        await self._sent()
        return await self._collection.count_documents(filter, **self._bound(kwargs))

    async def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> AsyncCommandCursor[Document]:
        await self._sent()
        return await self._collection.aggregate(pipeline, **self._bound(kwargs))

    async def insert_one(self, document: Document, **kwargs: Any) -> InsertOneResult:
        await self._sent()
        return await self._collection.insert_one(document, **self._bound(kwargs))

    async def insert_many(self, documents: Sequence[Document], **kwargs: Any) -> InsertManyResult:
        await self._sent()
        return await self._collection.insert_many(documents, **self._bound(kwargs))

    async def update_one(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        await self._sent()
        return await self._collection.update_one(filter, update, **self._bound(kwargs))

    async def update_many(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        await self._sent()
        return await self._collection.update_many(filter, update, **self._bound(kwargs))

    async def replace_one(self, filter: Filter, replacement: Document, **kwargs: Any) -> UpdateResult:
        await self._sent()
        return await self._collection.replace_one(filter, replacement, **self._bound(kwargs))

    async def find_one_and_update(self, filter: Filter, update: Any, **kwargs: Any) -> Document | None:
        await self._sent()
        return await self._collection.find_one_and_update(filter, update, **self._bound(kwargs))

    async def delete_one(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        await self._sent()
        return await self._collection.delete_one(filter, **self._bound(kwargs))

    async def delete_many(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        await self._sent()
        return await self._collection.delete_many(filter, **self._bound(kwargs))

    async def bulk_write(self, requests: Sequence[Any], **kwargs: Any) -> BulkWriteResult:
        await self._sent()
        return await self._collection.bulk_write(requests, **self._bound(kwargs))


class _SentFirst:
    """A cursor whose query waits until the writes kept for its collection are sent (a cursor is
    made without waiting, and queries the server when first read)."""

    def __init__(self, cursor: AsyncCursor[Document], send: Callable[[], Awaitable[None]]) -> None:
        self._cursor = cursor
        self._send = send

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._cursor, name)

        def chained(*args: Any, **kwargs: Any) -> Any:  # sort(), limit()... answer the cursor
            result = method(*args, **kwargs)
            return self if result is self._cursor else result

        return chained if callable(method) else method

    async def to_list(self, length: int | None = None) -> list[Document]:
        await self._send()
        return await self._cursor.to_list(length)

    async def __aiter__(self) -> AsyncIterator[Document]:
        await self._send()
        async for document in self._cursor:
            yield document


class Database:
    """The service's database as seen from inside one unit of work."""

    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self._db = db
        self._session = session
        # Collection.write_later and insert_later, per collection, in order
        self.pending: dict[str, list[WriteRequest | _Absent]] = {}

    def __getitem__(self, name: str) -> Collection:
        return Collection(self._db[name], self._session, self)

    async def send(self, name: str | None = None) -> None:
        """Send the writes kept with `write_later` and `insert_later` (to one collection, or to
        all of them), in order: each run of writes in one ordered `bulk_write`, each run of
        inserts as one `insert_absent`."""
        for collection in [name] if name is not None else list(self.pending):
            kept = self.pending.pop(collection, [])
            for absent, run in itertools.groupby(kept, key=lambda k: isinstance(k, _Absent)):
                if absent:
                    documents = [cast(_Absent, k).document for k in run]
                    await insert_absent(self._db[collection], documents, self._session)
                else:
                    requests = cast(list[WriteRequest], list(run))
                    await self._db[collection].bulk_write(requests, ordered=True, session=self._session)


class _Absent(NamedTuple):
    """Kept by `Collection.insert_later`."""

    document: Document


async def insert_absent(
    collection: AsyncCollection[Document], documents: Sequence[Document], session: AsyncClientSession
) -> list[Document]:
    """Insert each of `documents` whose `_id` is not stored yet (of an `_id` given twice, the
    first) and return those inserted, in order: what upserts with `$setOnInsert` alone do, in
    two statements (a read of the ids, one `insert_many`) at about half the embedded database's
    cost per document (docs/benchmarks.md). Another transaction inserting one of them meanwhile
    makes this one fail (a write conflict or a duplicate key), and the retry finds it stored."""
    firsts: dict[Any, Document] = {}
    for document in documents:
        firsts.setdefault(document["_id"], document)
    if not firsts:
        return []
    stored = {
        found["_id"]
        async for found in collection.find({"_id": {"$in": list(firsts)}}, {"_id": 1}, session=session)
    }
    new = [document for key, document in firsts.items() if key not in stored]
    if new:
        await collection.insert_many(new, ordered=True, session=session)
    return new


DUPLICATE_KEY = 11000  # MongoDB's error code for an insert of a unique key that is stored already


class Emitted(NamedTuple):
    """An event a unit of work will publish: its envelope, its topic, the trace context it was
    emitted in (the record continues that trace, whenever it is sent), and whether its id was
    drawn at random for it (`fresh`: no row can hold it yet, so the outbox stores it without
    asking) rather than derived from a fact that may be derived again."""

    envelope: Envelope
    topic: str
    trace: tracing.Carrier
    fresh: bool = False

    @classmethod
    def of(cls, event: Event, *, producer: str, correlation_id: str, event_id: str | None = None) -> Emitted:
        """`event` in its envelope, for its topic, in the current trace context."""
        envelope = Envelope.wrap(event, producer=producer, correlation_id=correlation_id, event_id=event_id)
        return cls(envelope, event.TOPIC, tracing.carrier(), fresh=event_id is None)


class OutboxPort(Protocol):
    """What a unit of work needs of the outbox (see outbox.Outbox)."""

    async def add(self, emitted: list[Emitted], session: AsyncClientSession) -> None: ...

    async def forget(self, query: dict[str, Any], session: AsyncClientSession) -> None: ...

    def wake(self) -> None: ...


@dataclass
class UnitOfWork:
    """A transaction on the service's database, with the events it will publish."""

    db: Database
    session: AsyncClientSession
    correlation_id: str
    producer: str
    _outbox: OutboxPort
    emitted: list[Emitted] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _before_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # What handlers in this unit of work keep for the ones after them (several messages can
    # share one); gone with the unit of work, and empty again when it is retried.
    local: dict[Any, Any] = field(default_factory=dict)
    # The messages this unit of work handles (a consumer's batch, in order), so that the first
    # handler can read what all of them need in one statement (see `existing`).
    batch: list[Event] = field(default_factory=list)

    def before_commit(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in this unit of work after its handlers, before its writes are sent and
        its events stored (e.g. one bulk write for what a batch's handlers gathered)."""
        self._before_commit.append(work)

    async def finish(self) -> None:
        """What comes after the handlers: the `before_commit` work, then the writes kept
        for later."""
        while self._before_commit:
            await self._before_commit.pop(0)()
        await self.db.send()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this unit of work has committed (e.g. to wake a worker)."""
        self._after_commit.append(callback)

    def emit(
        self, event: Event, *, event_id: str | None = None, correlation_id: str | None = None
    ) -> Envelope:
        """Publish `event` if, and only if, this unit of work commits (`correlation_id`: the
        request or message it follows from, when not this unit of work's own)."""
        emitted = Emitted.of(
            event,
            producer=self.producer,
            correlation_id=correlation_id or self.correlation_id,
            event_id=event_id,
        )
        self.emitted.append(emitted)
        return emitted.envelope

    async def forget_published(self, query: dict[str, Any]) -> None:
        """Erasure: drop stored outgoing events matching `query`, published or not, in this
        transaction (e.g. {"key": company_id})."""
        await self._outbox.forget(query, self.session)

    def committed(self) -> None:
        if self.emitted:
            self._outbox.wake()
        for callback in self._after_commit:
            callback()


async def existing(uow: Any, collection: str, ids: Iterable[str], ahead: Iterable[str] = ()) -> set[str]:
    """Which of `ids` have a document in `collection`, each asked once per unit of work (a
    batch of messages names the same companies or people many times). The answer holds for
    the unit of work (it reads one snapshot) as long as it does not write those documents
    itself. `ahead`: ids the later messages of the batch will ask about, asked in the same
    statement. `uow`: a UnitOfWork, or anything with its `db` and `local`."""
    wanted = list(ids)
    known: dict[str, bool] = uow.local.setdefault(("existing", collection), {})
    unknown = [i for i in wanted if i not in known]
    if unknown:
        unknown += [i for i in set(ahead) if i not in known and i not in unknown]
        found = {d["_id"] async for d in uow.db[collection].find({"_id": {"$in": unknown}}, {"_id": 1})}
        known.update({i: i in found for i in unknown})
    return {i for i in wanted if known[i]}


class Transactions:
    """Opens units of work on one service's database."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: AsyncDatabase[Document],
        outbox: OutboxPort,
        producer: str,
    ) -> None:
        self._client = client
        self._db = db
        self._outbox = outbox
        self._producer = producer

    def _open(self, session: AsyncClientSession, correlation_id: str | None) -> UnitOfWork:
        return UnitOfWork(
            db=Database(self._db, session),
            session=session,
            correlation_id=correlation_id or str(uuid.uuid4()),
            producer=self._producer,
            _outbox=self._outbox,
        )

    @asynccontextmanager
    async def unit_of_work(self, correlation_id: str | None = None) -> AsyncIterator[UnitOfWork]:
        """One transaction, tried once; the events emitted in it go to the outbox in the same
        commit. An exception inside aborts it: nothing is stored, nothing published."""
        async with transaction_session(self._client) as session, await session.start_transaction():
            uow = self._open(session, correlation_id)
            yield uow
            await uow.finish()
            await self._outbox.add(uow.emitted, session)
        uow.committed()

    async def transact(
        self, work: Callable[[UnitOfWork], Awaitable[T]], correlation_id: str | None = None
    ) -> T:
        """Run `work` in a unit of work, from the start again while the transaction collides with a
        concurrent one, with PyMongo's `with_transaction` (backoff, at most 120 s)."""
        correlation_id = correlation_id or str(uuid.uuid4())
        last: list[UnitOfWork] = []

        async def attempt(session: AsyncClientSession) -> T:
            uow = self._open(session, correlation_id)
            last[:] = [uow]
            result = await work(uow)
            await uow.finish()
            await self._outbox.add(uow.emitted, session)
            return result

        async with transaction_session(self._client) as session:
            result = await session.with_transaction(attempt)
        last[0].committed()
        return result
