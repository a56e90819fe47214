"""Registration's HTTP API, one router per resource."""

from fastapi import APIRouter

from c2f_registration.api import clusters, companies, events, imports

router = APIRouter()
router.include_router(clusters.router)
router.include_router(companies.router)
router.include_router(events.router)
router.include_router(imports.router)
