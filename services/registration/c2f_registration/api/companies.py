"""Member companies: the map of products and services, with needs, markets and contacts.

A cluster's key sees and changes only its own members; another cluster's member
is a 404, as if it did not exist. The operator sees all.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from c2f_registration import auth, store
from c2f_registration.api.common import (
    CREATED,
    MAX_OFFSET,
    NOT_YOUR_CLUSTER,
    merged,
    not_found,
    register,
    replace,
    unknown,
)
from c2f_registration.schemas import CompanyFields, CompanyIn, CompanyOut, CompanyPage, CompanyPatch
from c2f_shared.events import CompanyErased, CompanyRegistered, CompanyUpdated
from c2f_shared.service import Runtime, UnitOfWork
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


def natural_key(cluster_id: str, legal_name: str) -> str:
    return f"{cluster_id}:{legal_name.casefold()}"


def out(doc: dict[str, Any], created: bool = False) -> CompanyOut:
    return CompanyOut(
        **doc["data"],
        id=doc["_id"],
        revision=doc["revision"],
        created=created,
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


async def visible_company(runtime: Runtime, caller: auth.Principal, company_id: str) -> dict[str, Any]:
    doc = await store.get(runtime, store.COMPANIES, company_id)
    if doc is None or not caller.may_act_for(doc["data"]["cluster_id"]):
        raise not_found("company", company_id)
    return doc


@router.post("/companies", status_code=201, response_model=CompanyOut, responses=CREATED)
async def register_company(
    body: CompanyIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut:
    """Register a member company of `cluster_id` with its offers, needs, markets and contacts."""
    auth.require_may_act_for(caller, body.cluster_id)
    if await store.local_cluster(runtime, body.cluster_id) is None:
        raise unknown("cluster_id", "cluster (served by this instance)", body.cluster_id)
    data = body.model_dump(mode="json")
    stored = await register(
        response,
        runtime,
        store.COMPANIES,
        natural_key(body.cluster_id, body.legal_name),
        data,
        lambda new_id: CompanyRegistered(company_id=new_id, **data),
        correlation,
    )
    return out(stored.doc, stored.created)


async def save_company(runtime: Runtime, cluster_id: str, fields: CompanyFields, correlation: str) -> str:
    """Register the company, or bring its stored profile up to `fields`: 'created',
    'updated' or 'unchanged' (idempotent; what bulk import does for each row)."""
    key = natural_key(cluster_id, fields.legal_name)
    doc = await runtime.db[store.COMPANIES].find_one({"natural_key": key})
    if doc is None:
        data = {**fields.model_dump(mode="json"), "cluster_id": cluster_id}
        stored = await store.register_once(
            runtime,
            store.COMPANIES,
            key,
            data,
            lambda new_id: CompanyRegistered(company_id=new_id, **data),
            correlation,
        )
        return "created" if stored.created else "unchanged"
    return "updated" if (await _replace(runtime, doc, fields, correlation))[1] else "unchanged"


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
    if cluster_id is not None:
        auth.require_may_act_for(caller, cluster_id)
    query: dict[str, Any] = {}
    if not caller.is_operator:
        query["data.cluster_id"] = caller.cluster_id
    elif cluster_id is not None:
        query["data.cluster_id"] = cluster_id
    if country:
        query["data.country"] = country
    if sector:
        query["data.sectors"] = sector.value
    if target_market:
        query["data.target_markets"] = target_market
    if q:
        query["data.legal_name"] = {"$regex": re.escape(q), "$options": "i"}
    companies = runtime.db[store.COMPANIES]
    page = await companies.find(query).sort("created_at").skip(offset).limit(limit).to_list(None)
    total = await companies.count_documents(query)
    return CompanyPage(items=[out(d) for d in page], total=total, limit=limit, offset=offset)


@router.get("/companies/{company_id}", response_model=CompanyOut, responses=NOT_VISIBLE)
async def get_company(company_id: str, runtime: RuntimeDep, caller: auth.Caller) -> CompanyOut:
    return out(await visible_company(runtime, caller, company_id))


async def _replace(
    runtime: Runtime, doc: dict[str, Any], fields: CompanyFields, correlation: str
) -> tuple[CompanyOut, bool]:
    cluster_id = doc["data"]["cluster_id"]
    data = {**fields.model_dump(mode="json"), "cluster_id": cluster_id}
    new_doc, changed = await replace(
        runtime,
        store.COMPANIES,
        doc,
        natural_key(cluster_id, data["legal_name"]),
        data,
        lambda revision: CompanyUpdated(company_id=doc["_id"], revision=revision, **data),
        correlation,
    )
    return out(new_doc), changed


@router.put("/companies/{company_id}", response_model=CompanyOut, responses=CHANGED)
async def replace_company(
    company_id: str, body: CompanyFields, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut:
    """Replace the whole profile (the cluster cannot change). Unchanged data publishes nothing."""
    doc = await visible_company(runtime, caller, company_id)
    return (await _replace(runtime, doc, body, correlation))[0]


@router.patch("/companies/{company_id}", response_model=CompanyOut, responses=CHANGED)
async def update_company(
    company_id: str, body: CompanyPatch, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> CompanyOut:
    """Change some fields; a list given replaces the stored list."""
    doc = await visible_company(runtime, caller, company_id)
    current = {k: v for k, v in doc["data"].items() if k != "cluster_id"}
    changes = {**current, **body.model_dump(mode="json", exclude_unset=True)}
    fields = merged(CompanyFields, changes)
    return (await _replace(runtime, doc, fields, correlation))[0]


@router.delete("/companies/{company_id}", status_code=204, responses=NOT_VISIBLE)
async def erase_company(
    company_id: str, runtime: RuntimeDep, correlation: CorrelationId, caller: auth.Caller
) -> None:
    """Erase the company and its personal data (GDPR), here and, through the
    CompanyErased event, in every other service. Its event registrations go too."""
    doc = await visible_company(runtime, caller, company_id)
    cluster_id = doc["data"]["cluster_id"]

    async def work(uow: UnitOfWork) -> None:
        participants = (
            await uow.db[store.PARTICIPANTS]
            .find(
                {"data.company_id": company_id}, {"_id": 1, "event_id": 1, "status": 1}, session=uow.session
            )
            .to_list(None)
        )
        for participant in participants:
            if participant["status"] == "registered":  # its place at the event is freed
                await uow.db[store.EVENTS].update_one(
                    {"_id": participant["event_id"]}, {"$inc": {"registered": -1}}, session=uow.session
                )
        # The events that carried its data are not kept either, published or not.
        keys = [company_id, *[p["_id"] for p in participants]]
        await runtime.outbox.forget({"key": {"$in": keys}}, uow.session)
        await uow.db[store.COMPANIES].delete_one({"_id": company_id}, session=uow.session)
        await uow.db[store.PARTICIPANTS].delete_many({"data.company_id": company_id}, session=uow.session)
        # What remains: that an erasure happened, and when — no personal data.
        await uow.db[store.ERASURES].insert_one(
            {"_id": company_id, "cluster_id": cluster_id, "erased_at": datetime.now(UTC)}, session=uow.session
        )
        uow.emit(CompanyErased(company_id=company_id, cluster_id=cluster_id))

    await runtime.transact(work, correlation)


@router.get("/companies/{company_id}/export", responses=NOT_VISIBLE)
async def export_company(company_id: str, runtime: RuntimeDep, caller: auth.Caller) -> dict[str, Any]:
    """Everything registration holds about the company, as JSON (GDPR data portability)."""
    doc = await visible_company(runtime, caller, company_id)
    participations = await runtime.db[store.PARTICIPANTS].find({"data.company_id": company_id}).to_list(None)
    return {
        "exported_at": datetime.now(UTC).isoformat(),
        "company": out(doc).model_dump(mode="json"),
        "event_registrations": [
            {"id": p["_id"], "event_id": p["event_id"], **p["data"]} for p in participations
        ],
    }
