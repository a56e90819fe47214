"""Limits every service applies before its routes: request body size (413), and refused
credentials per address (429)."""

import json
import time
from collections import OrderedDict, deque
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class FailedAuthLimit:
    """ASGI middleware: an address whose requests were refused for their credentials (401 or
    403) `limit` times within `window` seconds gets 429 for everything but the health and
    metrics routes, until the oldest of those refusals is older than the window.

    It slows down guessing tokens, keys and signed links. The address is the client's as
    uvicorn sees it: behind a proxy, set FORWARDED_ALLOW_IPS so that X-Forwarded-For is
    trusted. Counts are per process: with N replicas an address gets up to N times the limit.
    """

    OPEN = ("/healthz", "/readyz", "/metrics")
    MAX_ADDRESSES = 10_000  # memory bound: the least recently refused are forgotten first

    def __init__(self, app: ASGIApp, limit: int, window: float = 60.0) -> None:
        self.app = app
        self.limit = limit
        self.window = window
        self._refused: OrderedDict[str, deque[float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.OPEN:
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        refused = self._refused.get(address)
        if refused is not None:
            while refused and refused[0] <= now - self.window:
                refused.popleft()
            if len(refused) >= self.limit:
                await _too_many(send, int(refused[0] + self.window - now) + 1)
                return

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                self._note(address, time.monotonic())
            await send(message)

        await self.app(scope, receive, observe)

    def _note(self, address: str, at: float) -> None:
        refused = self._refused.pop(address, None) or deque()
        refused.append(at)
        self._refused[address] = refused  # most recent last
        while len(self._refused) > self.MAX_ADDRESSES:
            self._refused.popitem(last=False)


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
