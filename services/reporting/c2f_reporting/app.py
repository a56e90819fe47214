"""Reporting's process: consumers of every topic and the reports API.
Run with `uvicorn c2f_reporting.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_reporting import api, projections, store
from c2f_reporting.config import Settings
from c2f_shared.service import Runtime
from c2f_shared.service.access import operator_digest
from c2f_shared.service.http import service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="reporting")
    runtime.consume(projections.HANDLERS, name="everything")
    app = service_app(
        runtime,
        description="The partnership in numbers, totals and per cluster, country, sector, event and "
        "month, as JSON, CSV and XLSX. Reads every topic into its own projections.",
        router=api.router,
    )

    async def rebuild() -> int:
        return await runtime.replay(forget=store.COLLECTIONS)

    app.state.rebuild = rebuild
    app.state.operator_digest = operator_digest(settings.operator_token)
    return app
