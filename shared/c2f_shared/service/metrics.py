"""Prometheus metrics every service exports on /metrics.

One registry per service process (not the library's global one), so that several
apps in one test process do not collide. Names follow Prometheus' conventions:
`_total` counters, `_seconds` histograms; the service itself is the scrape target's
`job`, not a label.

The metrics and their labels are listed in docs/operations.md, "Metrics".
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Handler latency spans a cached duplicate check (~1 ms) to a schedule computed in a transaction (s).
HANDLER_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "c2f_messages",
            "Messages taken from Kafka, by outcome",
            ["consumer", "topic", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "c2f_message_failures",
            "Failed attempts at a message: transient (database busy, retried without counting), "
            "error (counted toward the dead letter), poison (dead-lettered at once)",
            ["consumer", "topic", "kind"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "c2f_handler_seconds",
            "Time to process one message",
            ["consumer", "topic"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "c2f_consumer_lag",
            "Messages on a partition that the consumer group has not committed yet",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.http_requests = Counter(
            "c2f_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "c2f_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "c2f_outbox_pending", "Events committed but not yet published to Kafka", registry=r
        )
        self.dead_letters = Gauge(
            "c2f_dead_letters", "Messages this service set aside as dead letters", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetrics:
    """ASGI middleware: count and time each request under its route template (a plain ASGI
    class, not Starlette's BaseHTTPMiddleware, which runs every request in a task of its own)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.http_seconds.labels(scope["method"], route).observe(time.perf_counter() - started)
