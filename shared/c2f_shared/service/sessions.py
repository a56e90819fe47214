"""Sessions for transactions: at most a few at once per database client; the rest wait
their turn.

SecantusDB (the embedded database) keeps every session that has ever run a transaction for
the rest of its life, and on each statement, commit and abort of any transaction it walks all
of them under one lock, taking each one's mutex (which a session holds while its statement
runs). PyMongo makes a new session whenever more transactions are open at once than it has
sessions, so a rush of 2,000 concurrent requests, each in a transaction, left 2,000 sessions
behind, and every later statement of every service paid for them (about 0.4 ms a statement
for 4,000 sessions, measured; more under concurrency, as each walk waits for the running
statements). With a bound, PyMongo reuses the same few sessions forever.

A bound costs nothing here: the embedded database runs one statement at a time anyway, and
a transaction waiting for its turn holds nothing. A real MongoDB keeps sessions cheaply; a
few transactions per core at once is all it needs from one process too.

A transaction opened inside another (in the same task, or a task started from it) does not
wait: it would wait for its own caller's turn.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

AT_ONCE = 8  # transactions at once per client, unless `bound` says otherwise (a service: its settings)

_turns: "weakref.WeakKeyDictionary[Any, asyncio.Semaphore]" = weakref.WeakKeyDictionary()
_inside: ContextVar[bool] = ContextVar("c2f_inside_transaction_session", default=False)


def bound(client: Any, at_once: int) -> None:
    """At most `at_once` transactions at once on `client` (an AsyncMongoClient)."""
    _turns[client] = asyncio.Semaphore(at_once)


@asynccontextmanager
async def transaction_session(client: Any) -> AsyncIterator[AsyncClientSession]:
    """A session of `client` to run transactions in, once it is this caller's turn."""
    if _inside.get():
        async with client.start_session() as session:
            yield session
        return
    turn = _turns.get(client)
    if turn is None:
        turn = _turns[client] = asyncio.Semaphore(AT_ONCE)
    async with turn:
        inside = _inside.set(True)
        try:
            async with client.start_session() as session:
                yield session
        finally:
            _inside.reset(inside)
