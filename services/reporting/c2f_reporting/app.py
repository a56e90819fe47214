"""Reporting's process: consumers of every topic and the reports API.
Run with `uvicorn c2f_reporting.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_reporting import api, projections
from c2f_reporting.config import Settings
from c2f_shared import topics
from c2f_shared.service import Runtime
from c2f_shared.service import http as service_http


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service_http.configure_logging(settings.log_level)
    runtime = Runtime(settings, service="reporting")
    runtime.consume(topics.ALL, projections.project, name="everything")
    app = FastAPI(
        title="C2Future Match — reporting",
        description="The partnership in numbers.",
        version="0.1.0",
        lifespan=runtime.lifespan,
    )
    service_http.install(app, runtime, description="Reads every topic into its own projections.")
    app.include_router(api.router)
    return app
