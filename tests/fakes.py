"""An in-memory unit of work, so a consumer's handlers can be unit-tested without a server.

`FakeStore` holds a service's collections in mongomock (MongoDB's query and update language,
in memory); `FakeStore.handle` runs one event through a service's HANDLERS as the pipeline
would: in a unit of work whose collections have the methods of `unit_of_work.Collection`,
collecting what it emits and calling its after-commit callbacks. `FakeStore.transact` is the
pipeline's port: work that raises leaves nothing behind, as an aborted transaction.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import mongomock
from pymongo import DeleteMany, DeleteOne, InsertOne, UpdateMany, UpdateOne

from c2f_shared.envelope import Envelope
from c2f_shared.events import Event
from c2f_shared.service import Handlers, UnitOfWork

Document = dict[str, Any]
T = TypeVar("T")


class FakeCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> FakeCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def limit(self, n: int) -> FakeCursor:
        self._cursor = self._cursor.limit(n)
        return self

    def skip(self, n: int) -> FakeCursor:
        self._cursor = self._cursor.skip(n)
        return self

    async def to_list(self, length: int | None = None) -> list[Document]:
        docs = list(self._cursor)
        return docs if length is None else docs[:length]

    def __aiter__(self) -> FakeCursor:
        return self

    async def __anext__(self) -> Document:
        try:
            return cast(Document, next(self._cursor))
        except StopIteration:
            raise StopAsyncIteration from None


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.pop("session", None)
    return kwargs


class FakeCollection:
    """`unit_of_work.Collection`'s methods over a mongomock collection."""

    def __init__(self, collection: Any) -> None:
        self._c = collection

    @property
    def name(self) -> str:
        return str(self._c.name)

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Document | None:
        return cast(Document | None, self._c.find_one(filter, *args, **_plain(kwargs)))

    def find(self, filter: Any = None, *args: Any, **kwargs: Any) -> FakeCursor:
        return FakeCursor(self._c.find(filter, *args, **_plain(kwargs)))

    async def count_documents(self, filter: Any, **kwargs: Any) -> int:
        return int(self._c.count_documents(filter, **_plain(kwargs)))

    async def aggregate(self, pipeline: Sequence[Any], **kwargs: Any) -> FakeCursor:
        return FakeCursor(iter(list(self._c.aggregate(list(pipeline), **_plain(kwargs)))))

    async def insert_one(self, document: Document, **kwargs: Any) -> Any:
        return self._c.insert_one(document, **_plain(kwargs))

    async def insert_many(self, documents: Sequence[Document], **kwargs: Any) -> Any:
        return self._c.insert_many(list(documents), **_plain(kwargs))

    async def update_one(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        return self._c.update_one(filter, update, **_plain(kwargs))

    async def update_many(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        return self._c.update_many(filter, update, **_plain(kwargs))

    async def replace_one(self, filter: Any, replacement: Document, **kwargs: Any) -> Any:
        return self._c.replace_one(filter, replacement, **_plain(kwargs))

    async def find_one_and_update(self, filter: Any, update: Any, **kwargs: Any) -> Document | None:
        return cast(Document | None, self._c.find_one_and_update(filter, update, **_plain(kwargs)))

    async def delete_one(self, filter: Any, **kwargs: Any) -> Any:
        return self._c.delete_one(filter, **_plain(kwargs))

    async def delete_many(self, filter: Any, **kwargs: Any) -> Any:
        return self._c.delete_many(filter, **_plain(kwargs))

    async def bulk_write(self, requests: Sequence[Any], **kwargs: Any) -> Any:
        return self._apply(requests)

    def write_later(self, request: Any) -> None:
        """Here at once: nothing else runs in between, and the fake keeps no order to break."""
        self._apply([request])

    def insert_later(self, document: Document) -> None:
        """Here at once, as `write_later`."""
        if self._c.find_one({"_id": document["_id"]}, {"_id": 1}) is None:
            self._c.insert_one(document)

    async def insert_absent(self, documents: Sequence[Document]) -> list[Document]:
        inserted: list[Document] = []
        for document in documents:
            if self._c.find_one({"_id": document["_id"]}, {"_id": 1}) is None:
                self._c.insert_one(document)
                inserted.append(document)
        return inserted

    def _apply(self, requests: Sequence[Any]) -> _BulkResult:
        """mongomock's bulk_write does not take pymongo's request objects: apply them one by one,
        answering what the handlers read (`upserted_ids`, by position)."""
        upserted: dict[int, Any] = {}
        for i, request in enumerate(requests):
            doc = request._doc if hasattr(request, "_doc") else None
            if isinstance(request, InsertOne):
                self._c.insert_one(doc)
            elif isinstance(request, UpdateOne | UpdateMany):
                apply = self._c.update_one if isinstance(request, UpdateOne) else self._c.update_many
                result = apply(request._filter, doc, upsert=request._upsert)
                if result.upserted_id is not None:
                    upserted[i] = result.upserted_id
            elif isinstance(request, DeleteOne | DeleteMany):
                (self._c.delete_one if isinstance(request, DeleteOne) else self._c.delete_many)(
                    request._filter
                )
            else:
                raise NotImplementedError(type(request).__name__)
        return _BulkResult(upserted)


class _BulkResult:
    def __init__(self, upserted: dict[int, Any]) -> None:
        self.upserted_ids = upserted


class FakeDatabase:
    def __init__(self, db: Any) -> None:
        self._db = db

    def __getitem__(self, name: str) -> FakeCollection:
        return FakeCollection(self._db[name])

    async def send(self, name: str | None = None) -> None:
        """Writes kept for later are applied at once here (FakeCollection.write_later)."""


class FakeUnitOfWork:
    """What a handler sees of a unit of work: `db`, `emit`, `after_commit`, `forget_published`."""

    def __init__(self, db: FakeDatabase, correlation_id: str) -> None:
        self.db = db
        self.correlation_id = correlation_id
        self.emitted: list[Event] = []
        self.forgotten: list[dict[str, Any]] = []
        self.local: dict[Any, Any] = {}
        self.batch: list[Event] = []
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []

    def emit(self, event: Event, *, event_id: str | None = None, correlation_id: str | None = None) -> None:
        self.emitted.append(event)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def before_commit(self, work: Callable[[], Awaitable[None]]) -> None:
        self._before_commit.append(work)

    async def finish(self) -> None:
        while self._before_commit:
            await self._before_commit.pop(0)()

    async def hold(self, lock: asyncio.Lock) -> None:
        """Nothing runs beside a handler here."""

    async def forget_published(self, query: dict[str, Any]) -> None:
        self.forgotten.append(query)


class FakeStore:
    """One service's database, in memory, and its handlers run against it."""

    def __init__(self, handlers: Handlers | None = None) -> None:
        self.handlers = handlers or {}
        self._client: Any = mongomock.MongoClient()
        self.db = FakeDatabase(self._client["service"])

    def __getitem__(self, name: str) -> Any:
        """A collection to look into (mongomock's own, synchronous)."""
        return self._client["service"][name]

    async def transact(
        self, work: Callable[[UnitOfWork], Awaitable[T]], correlation_id: str | None = None
    ) -> T:
        """`Runtime.transact`, in memory (the pipeline's port)."""
        uow = FakeUnitOfWork(self.db, correlation_id or "test")
        saved = self._snapshot()
        try:
            result = await work(cast(UnitOfWork, uow))
            await uow.finish()
        except BaseException:
            self._restore(saved)  # as an aborted transaction leaves nothing
            raise
        for callback in uow._after_commit:
            callback()
        return result

    def _snapshot(self) -> dict[str, Any]:
        stores = self._client["service"]._store._collections
        return {name: copy.deepcopy(store._documents) for name, store in stores.items()}

    def _restore(self, saved: dict[str, Any]) -> None:
        for name, store in self._client["service"]._store._collections.items():
            store._documents = saved.get(name, type(store._documents)())

    async def handle(self, event: Event, *, producer: str = "test") -> FakeUnitOfWork:
        """Run `event` through its handler, as the pipeline would once the unit of work commits."""
        return await self.handle_together(event, producer=producer)

    async def handle_together(self, *events: Event, producer: str = "test") -> FakeUnitOfWork:
        """Run `events` through their handlers in one unit of work, as the pipeline runs a
        batch of one partition's messages."""
        uow = FakeUnitOfWork(self.db, "test")
        uow.batch = list(events)
        for event in events:
            envelope = Envelope.wrap(event, producer=producer, correlation_id="test")
            handler = self.handlers.get(type(event))
            if handler is None:
                raise LookupError(f"the service takes no {type(event).__name__}")
            await handler(event, envelope, cast(UnitOfWork, uow))
        await uow.finish()
        for callback in uow._after_commit:
            callback()
        return uow


class CountingStore(FakeStore):
    """The in-memory store, counting the transactions run on it."""

    def __init__(self, handlers: Handlers | None = None) -> None:
        super().__init__(handlers)
        self.transactions = 0

    async def transact(self, work: Any, correlation_id: str | None = None) -> Any:
        self.transactions += 1
        return await super().transact(work, correlation_id)
