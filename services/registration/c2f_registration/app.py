"""Registration's process: FastAPI app with the runtime's lifespan. Run with
`uvicorn c2f_registration.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_registration import api, api_keys, imports, partnership, store
from c2f_registration.api import errors
from c2f_registration.api import imports as import_routes
from c2f_registration.config import Settings
from c2f_shared.events import (
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    EventCreated,
    ParticipantRegistered,
)
from c2f_shared.service import Runtime
from c2f_shared.service.http import service_app


async def _on_start(runtime: Runtime) -> None:
    await store.ensure_indexes(runtime)
    await runtime.db[api_keys.API_KEYS].create_index("cluster_id")
    await runtime.db[partnership.FOREIGN_PARTICIPANTS].create_index("company_id")
    await imports.interrupt_unfinished(runtime)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="registration")
    runtime.on_start(_on_start)
    runtime.consume(partnership.HANDLERS, name="partnership")
    runtime.publishes(
        ClusterRegistered,
        CompanyRegistered,
        CompanyUpdated,
        CompanyErased,
        EventCreated,
        ParticipantRegistered,
    )
    app = service_app(
        runtime,
        description="Clusters, member companies with offers and needs, events and participants. "
        "Publishes what is registered. Authenticate with `Authorization: Bearer <token>`: "
        "the operator's token, or a cluster's API key.",
        router=api.router,
        body_limits={"/imports": import_routes.MAX_FILE_BYTES},
    )
    errors.install(app)
    app.state.served_clusters = settings.served()
    token = settings.operator_token
    app.state.operator_digest = api_keys.digest(token.get_secret_value()) if token else None
    return app
