"""Matching's process: consumers of registration's topics and a small HTTP API.
Run with `uvicorn c2f_matching.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_matching import api, handlers
from c2f_matching.config import Settings
from c2f_shared import topics
from c2f_shared.events import MatchSuggested
from c2f_shared.service import Runtime
from c2f_shared.service.http import service_app


async def _on_start(runtime: Runtime) -> None:
    await handlers.ensure_indexes(runtime.db)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="matching")
    runtime.on_start(_on_start)
    runtime.consume(
        [topics.COMPANIES, topics.EVENTS, topics.PARTICIPANTS], handlers.handle, name="registrations"
    )
    runtime.publishes(MatchSuggested)
    return service_app(
        runtime,
        description="Suggests who should meet whom at an event, with the reasons. "
        "Reads registrations; publishes match suggestions.",
        router=api.router,
    )
