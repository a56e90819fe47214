"""Limits every service applies before its routes: request body size (413), and refused
credentials per address (429), counted in the service's database so replicas share them."""

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, MongoDBStorage, MovingWindowSupport, Storage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
T = TypeVar("T")
DB_TIMEOUT_MS = 2000  # one check or count; past it the request goes through


class BodySizeLimit:
    """ASGI middleware: `limit` bytes per request body; `overrides` maps a path suffix to its own limit."""

    def __init__(self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        return next((n for suffix, n in self.overrides.items() if path.endswith(suffix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _refuse(send, limit)
                return
            await self.app(scope, receive, send)  # the server holds the body to its declared length
            return
        # No declared length (chunked): read up to the limit before the application sees any of it.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                await _refuse(send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, limit: int) -> None:
    body: dict[str, Any] = {"detail": f"request body larger than {limit} bytes"}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Refusals:
    """Credentials refused per address, in a moving window, counted with `limits`: in memory
    (one process) until `share` points it at the service's database, where every replica of
    the service counts in the same documents (limits' MongoDB storage, TTL-indexed).

    limits' MongoDB storage uses PyMongo's synchronous client (its asynchronous one needs
    Motor), so its calls run in a worker thread; each is one round trip. The moving window is
    the strategy the embedded database supports (the sliding-window counter's update
    pipeline fails on it). If the database cannot answer, requests are let through (logged):
    the limit slows guessing, it must not take the service down.

    An address found clear is taken as clear for CLEAR_FOR_S without asking again (a busy
    client would otherwise cost the database a read per request); a refusal here ends that at
    once, one counted by another replica within CLEAR_FOR_S."""

    COUNTERS, WINDOWS = "auth_refusal_counters", "auth_refusals"
    CLEAR_FOR_S = 1.0
    MAX_CLEAR = 10_000  # addresses remembered as clear (the least recently seen are forgotten)

    def __init__(self, limit: int, window: int = 60) -> None:
        if window < 1:
            raise ValueError("the window of refused credentials is at least 1 s")
        self.item = RateLimitItemPerSecond(limit, window)
        self._storage: Storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._shared: MongoDBStorage | None = None
        self._clear: OrderedDict[str, float] = OrderedDict()  # address -> clear until (monotonic)

    async def share(self, mongo_uri: str, database: str) -> None:
        """Count in `database` from now on (shared by every process that uses it)."""
        storage = MongoDBStorage(
            mongo_uri,
            database_name=database,
            counter_collection_name=self.COUNTERS,
            window_collection_name=self.WINDOWS,
            wrap_exceptions=True,
            timeoutMS=DB_TIMEOUT_MS,
        )
        await asyncio.to_thread(lambda: storage.storage)  # connects and makes the TTL indexes
        self._shared = storage
        self._storage, self._limiter = storage, MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        """Back to counting in memory (for requests still finishing), and the client closed."""
        if self._shared is not None:
            client = self._shared.storage
            self._shared = None
            self._storage = MemoryStorage()
            self._limiter = MovingWindowRateLimiter(self._storage)
            await asyncio.to_thread(client.close)

    async def _call(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work) if self._shared is not None else work()

    async def wait_for(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None if it may now."""
        now = time.monotonic()
        if self._clear.get(address, 0.0) > now:
            return None
        start, count = await self._call(lambda: self._window(address))
        if count < self.item.amount:
            self._clear[address] = now + self.CLEAR_FOR_S
            self._clear.move_to_end(address)
            while len(self._clear) > self.MAX_CLEAR:
                self._clear.popitem(last=False)
            return None
        self._clear.pop(address, None)
        return max(1, int((start or time.time()) + self.item.get_expiry() - time.time()) + 1)

    def _window(self, address: str) -> tuple[float | None, int]:
        """When the address's oldest refusal in the window was, and how many there are.

        Not `get_window_stats`: limits' MongoDB storage answers a start of None when the
        address's refusals are all older than the window but not yet removed, and it fails."""
        storage = cast(MovingWindowSupport, self._storage)
        start, count = storage.get_moving_window(
            self.item.key_for(address), self.item.amount, self.item.get_expiry()
        )
        return start, int(count)

    async def refused(self, address: str) -> None:
        self._clear.pop(address, None)
        await self._call(lambda: self._limiter.hit(self.item, address))


class FailedAuthLimit:
    """ASGI middleware: an address whose requests were refused for their credentials (401 or
    403) `limit` times within `window` seconds gets 429 for everything but the health and
    metrics routes, until the oldest of those refusals is older than the window.

    It slows down guessing tokens, keys and signed links. The address is the client's as
    uvicorn sees it: behind a proxy, set FORWARDED_ALLOW_IPS so that X-Forwarded-For is
    trusted. With `refusals` shared through the database (service_app does), every replica
    of a service counts the same refusals; otherwise counts are per process.
    """

    OPEN = ("/healthz", "/readyz", "/metrics")

    def __init__(
        self, app: ASGIApp, limit: int = 30, window: int = 60, refusals: Refusals | None = None
    ) -> None:
        self.app = app
        self.refusals = refusals or Refusals(limit, window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.OPEN:
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        try:
            retry_after = await self.refusals.wait_for(address)
        except StorageError as error:
            retry_after = None
            log.warning("refused credentials not counted (%s); letting the request through", error)
        if retry_after is not None:
            await _too_many(send, retry_after)
            return

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                try:
                    await self.refusals.refused(address)
                except StorageError as error:
                    log.warning("a refused credential was not counted (%s)", error)
            await send(message)

        await self.app(scope, receive, observe)


async def _too_many(send: Send, retry_after: int) -> None:
    payload = json.dumps(
        {"detail": f"too many refused credentials from this address; try again in {retry_after} s"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
