"""HTTP basics every service serves: health, readiness, metrics, AsyncAPI, correlation ids, logs."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.specification import AsyncAPI
from pymongo.errors import ConnectionFailure, PyMongoError

from c2f_shared.service import dead_letters
from c2f_shared.service.limits import BodySizeLimit, FailedAuthLimit, Refusals
from c2f_shared.service.logs import configure_logging, log_context
from c2f_shared.service.metrics import CONTENT_TYPE_LATEST
from c2f_shared.service.runtime import Runtime

__all__ = ["CorrelationId", "RuntimeDep", "service_app"]

CORRELATION_HEADER = "X-Correlation-ID"
VERSION = "0.1.0"
BUSY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database is busy with concurrent changes or out of reach; nothing was stored. "
        "Try again after `Retry-After` seconds",
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


def correlation_id(request: Request) -> str:
    """The caller's correlation id, or the one made for this request."""
    return str(request.state.correlation_id)


def runtime_of(request: Request) -> Runtime:
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
    configure_logging(runtime.settings.log_level)
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
    app.middleware("http")(runtime.metrics.observe_http)
    return app


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

    @app.middleware("http")
    async def _correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.correlation_id = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        with log_context(correlation_id=request.state.correlation_id):
            response = await call_next(request)
        response.headers[CORRELATION_HEADER] = request.state.correlation_id
        return response

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
