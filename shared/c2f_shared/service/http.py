"""HTTP basics every service serves: health, readiness, metrics, AsyncAPI, correlation ids, logs."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.specification import AsyncAPI
from pymongo.errors import ConnectionFailure, PyMongoError

from c2f_shared.service import dead_letters
from c2f_shared.service.limits import BodySizeLimit, FailedAuthLimit
from c2f_shared.service.logs import configure_logging, log_context
from c2f_shared.service.metrics import CONTENT_TYPE_LATEST
from c2f_shared.service.runtime import Runtime

__all__ = ["CorrelationId", "RuntimeDep", "service_app"]

CORRELATION_HEADER = "X-Correlation-ID"
VERSION = "0.1.0"


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
    app = FastAPI(
        title=f"C2Future Match — {runtime.service}",
        description=description,
        version=VERSION,
        lifespan=runtime.lifespan,
    )
    _install_basics(app, runtime, description)
    app.include_router(router)
    app.include_router(dead_letters.router)
    app.add_middleware(BodySizeLimit, limit=runtime.settings.max_body_bytes, overrides=body_limits)
    app.add_middleware(FailedAuthLimit, limit=runtime.settings.auth_failures_per_minute)
    app.middleware("http")(runtime.metrics.observe_http)
    return app


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
        summary="Database and broker reachable, consumers joined their group",
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
