"""Registration's process: FastAPI app with the runtime's lifespan. Run with
`uvicorn c2f_registration.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_registration import api, store
from c2f_registration.config import Settings
from c2f_shared.events import ClusterRegistered, CompanyRegistered, EventCreated, ParticipantRegistered
from c2f_shared.service import Runtime
from c2f_shared.service import http as service_http


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service_http.configure_logging(settings.log_level)
    runtime = Runtime(settings, service="registration")
    runtime.on_start(store.ensure_indexes)
    runtime.publishes(ClusterRegistered, CompanyRegistered, EventCreated, ParticipantRegistered)
    app = FastAPI(
        title="C2Future Match — registration",
        description="Clusters, member companies with offers and needs, events and participants.",
        version="0.1.0",
        lifespan=runtime.lifespan,
    )
    service_http.install(app, runtime, description="Publishes what is registered.")
    app.include_router(api.router)
    return app
