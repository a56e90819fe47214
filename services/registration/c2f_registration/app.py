"""Registration's process: FastAPI app with the runtime's lifespan. Run with
`uvicorn c2f_registration.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_registration import api, store
from c2f_registration.config import Settings
from c2f_shared.events import ClusterRegistered, CompanyRegistered, EventCreated, ParticipantRegistered
from c2f_shared.service import Runtime
from c2f_shared.service.http import service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="registration")
    runtime.on_start(store.ensure_indexes)
    runtime.publishes(ClusterRegistered, CompanyRegistered, EventCreated, ParticipantRegistered)
    return service_app(
        runtime,
        description="Clusters, member companies with offers and needs, events and participants. "
        "Publishes what is registered.",
        router=api.router,
    )
