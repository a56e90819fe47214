"""Member companies: the map of products and services, with needs, markets and contacts.

A cluster's key sees and changes only its own members; another cluster's member
is a 404, as if it did not exist. The operator sees all.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from c2f_registration import companies, store
from c2f_registration.api import auth
from c2f_registration.api.common import CREATED, MAX_OFFSET, NOT_YOUR_CLUSTER, created
from c2f_registration.schemas import CompanyFields, CompanyIn, CompanyOut, CompanyPage, CompanyPatch
from c2f_shared.service.http import CorrelationId, RuntimeDep
from c2f_shared.vocabulary import Sector

router = APIRouter(tags=["companies"])

NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such company, or not one of your cluster's members"}
}
CHANGED: dict[int | str, dict[str, Any]] = {
    **NOT_VISIBLE,
    409: {"description": "Another member of the cluster already has this legal name"},
}


def out(doc: dict[str, Any], created: bool = False) -> CompanyOut:
    return CompanyOut(
        **doc["data"],
        id=doc["_id"],
        revision=doc["revision"],
        created=created,
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


class _Stored(BaseModel):
    """What a stored company adds to its profile in CompanyOut."""

    id: str
    revision: int
    created: bool
    created_at: datetime
    updated_at: datetime


def new_out(stored: store.Stored) -> JSONResponse:
    """CompanyOut of a company just registered, as JSON. Its profile is the request's body,
    validated a moment ago: building CompanyOut from it, and FastAPI checking that again,
    would validate every e-mail address and URL twice more (most of a registration's own
    CPU time) to answer the same JSON."""
    doc = stored.doc
    stamp = _Stored(
        id=doc["_id"],
        revision=doc["revision"],
        created=True,
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )
    return JSONResponse({**doc["data"], **stamp.model_dump(mode="json")}, status_code=status.HTTP_201_CREATED)


@router.post("/companies", status_code=201, response_model=CompanyOut, responses=CREATED)
async def register_company(
    body: CompanyIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut | JSONResponse:
    """Register a member company of `cluster_id` with its offers, needs, markets and contacts."""
    stored = created(response, await companies.register(runtime, caller, body, correlation))
    return new_out(stored) if stored.created else out(stored.doc)


@router.get("/companies", response_model=CompanyPage, responses=NOT_YOUR_CLUSTER)
async def list_companies(
    runtime: RuntimeDep,
    caller: auth.Caller,
    cluster_id: str | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    sector: Sector | None = None,
    target_market: Annotated[str | None, Query(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the legal name, any case")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CompanyPage:
    """Members, oldest first, filtered; a cluster's key lists only its own members."""
    filters = companies.Filters(
        cluster_id=cluster_id,
        country=country,
        sector=sector.value if sector else None,
        target_market=target_market,
        name_part=q,
    )
    page, total = await companies.search(runtime, caller, filters, limit, offset)
    return CompanyPage(items=[out(d) for d in page], total=total, limit=limit, offset=offset)


@router.get("/companies/{company_id}", response_model=CompanyOut, responses=NOT_VISIBLE)
async def get_company(company_id: str, runtime: RuntimeDep, caller: auth.Caller) -> CompanyOut:
    return out(await companies.visible(runtime, caller, company_id))


@router.put("/companies/{company_id}", response_model=CompanyOut, responses=CHANGED)
async def replace_company(
    company_id: str, body: CompanyFields, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut:
    """Replace the whole profile (the cluster cannot change). Unchanged data publishes nothing."""
    return out(await companies.replace(runtime, caller, company_id, body, correlation))


@router.patch("/companies/{company_id}", response_model=CompanyOut, responses=CHANGED)
async def update_company(
    company_id: str, body: CompanyPatch, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut:
    """Change some fields; a list given replaces the stored list."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    return out(await companies.update(runtime, caller, company_id, changes, correlation))


@router.delete("/companies/{company_id}", status_code=204, responses=NOT_VISIBLE)
async def erase_company(
    company_id: str, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> None:
    """Erase the company and its personal data (GDPR), here and, through the
    CompanyErased event, in every other service. Its event registrations go too."""
    await companies.erase(runtime, caller, company_id, correlation)


@router.get("/companies/{company_id}/export", responses=NOT_VISIBLE)
async def export_company(company_id: str, runtime: RuntimeDep, caller: auth.Caller) -> dict[str, Any]:
    """Everything registration holds about the company, as JSON (GDPR data portability)."""
    doc, participations = await companies.export(runtime, caller, company_id)
    return {
        "exported_at": datetime.now(UTC).isoformat(),
        "company": out(doc).model_dump(mode="json"),
        "event_registrations": [
            {"id": p["_id"], "event_id": p["event_id"], **p["data"]} for p in participations
        ],
    }
