"""HTTP basics every service serves: health, readiness, metrics, AsyncAPI, correlation ids, logs."""

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.specification import AsyncAPI
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from c2f_shared.service import dead_letters, tracing
from c2f_shared.service.limits import BodySizeLimit, FailedAuthLimit, Refusals
from c2f_shared.service.logs import configure_logging, log_context
from c2f_shared.service.metrics import CONTENT_TYPE_LATEST, HttpMetrics
from c2f_shared.service.runtime import Runtime

__all__ = ["CorrelationId", "RuntimeDep", "service_app"]

CORRELATION_HEADER = "X-Correlation-ID"
VERSION = "0.1.0"
BUSY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database is busy with concurrent changes or out of reach, or what the request "
        "needs has not reached this service yet; nothing was stored. Try again after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
    }
}
# What any route may answer because of what it shares with the others, not because of what it does:
# FastAPI refuses a body it cannot parse (not UTF-8, a broken form) with 400, the body limit is 413,
# and a route that takes a bearer token answers 401 without one.
UNREADABLE_BODY = {"description": "The body could not be read (not UTF-8, or a malformed form)"}
BODY_TOO_LARGE = {"description": "The body is larger than the service's limit"}
TOO_MANY_REFUSALS = {
    "description": "This address had too many credentials refused lately; try again after `Retry-After` s",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}
NO_TOKEN = {"description": "No token (`Authorization: Bearer <token>`), or one that is not known"}


# Dependencies are async on purpose: FastAPI runs a plain `def` dependency in a worker thread,
# and two thread hand-offs per request were a noticeable share of a registration's time.
async def correlation_id(request: Request) -> str:
    """The caller's correlation id, or the one made for this request."""
    return str(request.state.correlation_id)


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
CorrelationId = Annotated[str, Depends(correlation_id)]


def service_app(
    runtime: Runtime, *, description: str, router: APIRouter, body_limits: dict[str, int] | None = None
) -> FastAPI:
    """The service's FastAPI app: its routes, plus /healthz, /readyz, /metrics, /asyncapi.json,
    correlation ids, body size limits (413) and logs; the runtime starts and stops with it.

    `body_limits` maps a path suffix to a larger limit than the service's `max_body_bytes`."""
    configure_logging(runtime.settings.log_level, runtime.settings.log_format)
    refusals = Refusals(runtime.settings.auth_failures_per_minute, window=60)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            # Replicas share the count of refused credentials through the service's database.
            await refusals.share(runtime.settings.mongo_uri, runtime.settings.mongo_db)
            try:
                yield
            finally:
                await refusals.close()

    app = FastAPI(
        title=f"C2Future Match — {runtime.service}",
        description=description,
        version=VERSION,
        lifespan=lifespan,
    )
    _install_basics(app, runtime, description)
    app.include_router(router, responses=BUSY)
    app.include_router(dead_letters.router, responses=BUSY)
    _document_shared_answers(app)
    app.add_middleware(BodySizeLimit, limit=runtime.settings.max_body_bytes, overrides=body_limits)
    app.add_middleware(FailedAuthLimit, refusals=refusals)
    app.add_middleware(HttpMetrics, metrics=runtime.metrics)
    app.add_middleware(RequestLog)  # outermost: its line has every answer, 413 and 429 included
    tracing.instrument_app(app, loggable_path, loggable_query)  # around them all, when traces are on
    return app


_access = structlog.stdlib.get_logger("c2f.access")
_errors = logging.getLogger("c2f.http")
# A caller's correlation id is taken if it looks like one (it goes into logs and headers).
_CORRELATION = re.compile(r"[\w.:-]{1,128}")
# Probes and scrapes come every few seconds: their successes are logged at DEBUG only.
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
# Links carry signed tokens in the path (/act/{token}, /unsubscribe/{token}): a path parameter
# with such a name, and any long segment that is no UUID (a mistyped link matches no route),
# is left out of the log; so is every query value (only the names are kept).
_SECRET_PARAMETER = re.compile(r"token|secret|sig|key|password|code", re.IGNORECASE)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REDACTED = "<redacted>"


def loggable_path(path: str, path_params: dict[str, Any] | None = None) -> str:
    """`path` without the secrets links carry."""
    for name, value in (path_params or {}).items():
        if _SECRET_PARAMETER.search(name) and isinstance(value, str) and value:
            path = path.replace(value, REDACTED)
    return "/".join(
        REDACTED if len(segment) >= 32 and not _UUID.fullmatch(segment) else segment
        for segment in path.split("/")
    )


def loggable_query(query_string: bytes) -> str:
    """The names of the query parameters, without their values."""
    names = (pair.split(b"=", 1)[0] for pair in query_string.split(b"&") if pair)
    return "&".join(name.decode("latin-1") for name in names)


class RequestLog:
    """Gives each request its correlation id (the caller's `X-Correlation-ID`, or a new one),
    on every log line written while it runs and on the response, and writes one access log
    line per request: method, path (without tokens), status, duration, client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(CORRELATION_HEADER, "")
        correlation = given if _CORRELATION.fullmatch(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation  # request.state.correlation_id
        tracing.current_span_is(correlation_id=correlation)
        status: int | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[CORRELATION_HEADER] = correlation
            await send(message)

        with log_context(correlation_id=correlation):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Logged here, with the correlation id (uvicorn's line would have none), and
                # answered as Starlette would: 500 with no detail.
                _errors.exception(
                    "unhandled error in %s %s",
                    scope["method"],
                    loggable_path(scope["path"], scope.get("path_params")),
                )
                if status is not None:
                    raise
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send_with_id)
            finally:
                self._log(scope, status or 500, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float) -> None:
        path = loggable_path(scope["path"], scope.get("path_params"))
        quiet = scope["path"] in _PROBES and status < 400
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": client[0] if client else None,
        }
        if scope.get("query_string"):
            fields["query"] = loggable_query(scope["query_string"])
        (_access.debug if quiet else _access.info)(f"{scope['method']} {path} {status}", **fields)


def _document_shared_answers(app: FastAPI) -> None:
    """Add the answers every route shares (400 and 413 with a body, 401 with a token, 429 after
    refused credentials) to the OpenAPI document, so that it lists every status a route can give."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # made once (and again if routes are added), then kept
        for path, path_item in schema.get("paths", {}).items():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if path not in FailedAuthLimit.OPEN:
                    responses.setdefault("429", TOO_MANY_REFUSALS)
                if "requestBody" in operation:
                    responses.setdefault("400", UNREADABLE_BODY)
                    responses.setdefault("413", BODY_TOO_LARGE)
                if operation.get("security"):
                    responses.setdefault("401", NO_TOKEN)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_basics(app: FastAPI, runtime: Runtime, description: str) -> None:

    @app.exception_handler(PyMongoError)
    async def _busy(request: Request, error: PyMongoError) -> JSONResponse:
        """A write that kept colliding with concurrent ones (or a database out of reach) is
        "try again", not a server fault: 503 with Retry-After. Nothing was stored."""
        if error.has_error_label("TransientTransactionError") or isinstance(error, ConnectionFailure):
            return JSONResponse(
                {"detail": "the database is busy with concurrent changes; nothing was stored, try again"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        raise error

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": runtime.service}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Database reachable and consumers joined their group; `degraded` lists a broker lost since",
        responses={503: {"description": "Not ready; the body says which check failed"}},
    )
    async def readyz() -> JSONResponse:
        report = await runtime.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics: messages, failures, handler and HTTP latency, consumer lag",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics() -> Response:
        await runtime.refresh_metrics()
        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    spec = AsyncAPI(
        runtime.broker,
        title=f"C2Future Match — {runtime.service}",
        version=VERSION,
        description=description,
    )

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI 3.0 document of this service's topics")
    async def asyncapi() -> dict[str, Any]:
        jsonable: dict[str, Any] = spec.to_specification().to_jsonable()
        return jsonable
