"""Member companies: registering, changing, listing, exporting and erasing them.

A cluster's key sees and changes only its own members; another cluster's member
is not found, as if it did not exist. The operator sees all.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pydantic

from c2f_registration import store
from c2f_registration.api_keys import Principal
from c2f_registration.errors import Invalid, NotFound
from c2f_registration.schemas import CompanyFields, CompanyIn
from c2f_shared.events import CompanyErased, CompanyRegistered, CompanyUpdated
from c2f_shared.service import Runtime, UnitOfWork

Outcome = Literal["created", "updated", "unchanged"]
M = TypeVar("M", bound=pydantic.BaseModel)


def natural_key(cluster_id: str, legal_name: str) -> str:
    return f"{cluster_id}:{legal_name.casefold()}"


@dataclass(frozen=True)
class Filters:
    """What to list: None means any."""

    cluster_id: str | None = None
    country: str | None = None
    sector: str | None = None
    target_market: str | None = None
    name_part: str | None = None


async def register(runtime: Runtime, caller: Principal, company: CompanyIn, correlation: str) -> store.Stored:
    """Register a member of a cluster this instance serves (idempotent on the cluster and name)."""
    caller.require_may_act_for(company.cluster_id)
    if not await store.serves(runtime, company.cluster_id):
        raise Invalid.unknown("cluster_id", "cluster (served by this instance)", company.cluster_id)
    data = company.model_dump(mode="json")
    return await store.register_once(
        runtime,
        store.COMPANIES,
        natural_key(company.cluster_id, company.legal_name),
        data,
        lambda new_id: CompanyRegistered(company_id=new_id, **data),
        correlation,
    )


async def visible(runtime: Runtime, caller: Principal, company_id: str) -> dict[str, Any]:
    """The company, if the caller may see it; NotFound otherwise."""
    doc = await store.get(runtime, store.COMPANIES, company_id)
    if doc is None or not caller.may_act_for(doc["data"]["cluster_id"]):
        raise NotFound("company", company_id)
    return doc


async def search(
    runtime: Runtime, caller: Principal, filters: Filters, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of members, oldest first, and how many match; a cluster's key sees its own only."""
    if filters.cluster_id is not None:
        caller.require_may_act_for(filters.cluster_id)
    query: dict[str, Any] = {}
    if not caller.is_operator:
        query["data.cluster_id"] = caller.cluster_id
    elif filters.cluster_id is not None:
        query["data.cluster_id"] = filters.cluster_id
    if filters.country:
        query["data.country"] = filters.country
    if filters.sector:
        query["data.sectors"] = filters.sector
    if filters.target_market:
        query["data.target_markets"] = filters.target_market
    if filters.name_part:
        query["data.legal_name"] = {"$regex": re.escape(filters.name_part), "$options": "i"}
    companies = runtime.db[store.COMPANIES]
    page = await companies.find(query).sort("created_at").skip(offset).limit(limit).to_list(None)
    return page, await companies.count_documents(query)


async def _replace(
    runtime: Runtime, doc: dict[str, Any], fields: CompanyFields, correlation: str
) -> tuple[dict[str, Any], bool]:
    cluster_id = doc["data"]["cluster_id"]
    data = {**fields.model_dump(mode="json"), "cluster_id": cluster_id}
    return await store.replace(
        runtime,
        store.COMPANIES,
        doc,
        natural_key(cluster_id, data["legal_name"]),
        data,
        lambda revision: CompanyUpdated(company_id=doc["_id"], revision=revision, **data),
        correlation,
    )


async def replace(
    runtime: Runtime, caller: Principal, company_id: str, fields: CompanyFields, correlation: str
) -> dict[str, Any]:
    """Replace the whole profile (the cluster cannot change). Unchanged data publishes nothing."""
    doc = await visible(runtime, caller, company_id)
    return (await _replace(runtime, doc, fields, correlation))[0]


async def update(
    runtime: Runtime, caller: Principal, company_id: str, changes: dict[str, Any], correlation: str
) -> dict[str, Any]:
    """Change some fields (a list given replaces the stored list); the result must be a valid profile."""
    doc = await visible(runtime, caller, company_id)
    current = {k: v for k, v in doc["data"].items() if k != "cluster_id"}
    fields = merged(CompanyFields, {**current, **changes})
    return (await _replace(runtime, doc, fields, correlation))[0]


def merged(model: type[M], data: dict[str, Any]) -> M:
    """`data` (stored fields with a change applied) as `model`, or Invalid naming each field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise Invalid([{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]) from None


async def save(runtime: Runtime, cluster_id: str, fields: CompanyFields, correlation: str) -> Outcome:
    """Register the company, or bring its stored profile up to `fields` (idempotent; what a
    bulk import does for each row of a cluster it was allowed to import into)."""
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


async def plan(runtime: Runtime, cluster_id: str, fields: dict[str, Any]) -> Outcome:
    """What `save` would do with this row, without doing it."""
    doc = await runtime.db[store.COMPANIES].find_one(
        {"natural_key": natural_key(cluster_id, fields["legal_name"])}
    )
    if doc is None:
        return "created"
    data = {**CompanyFields.model_validate(fields).model_dump(mode="json"), "cluster_id": cluster_id}
    return "unchanged" if store.fingerprint(data) == doc["fingerprint"] else "updated"


async def erase(runtime: Runtime, caller: Principal, company_id: str, correlation: str) -> None:
    """Erase the company and its personal data (GDPR), here and, through the CompanyErased
    event, in every other service. Its event registrations go too, freeing their places."""
    doc = await visible(runtime, caller, company_id)
    cluster_id = doc["data"]["cluster_id"]

    async def work(uow: UnitOfWork) -> None:
        participants = (
            await uow.db[store.PARTICIPANTS]
            .find({"data.company_id": company_id}, {"_id": 1, "event_id": 1, "status": 1})
            .to_list(None)
        )
        for participant in participants:
            if participant["status"] == "registered":  # its place at the event is freed
                await uow.db[store.EVENTS].update_one(
                    {"_id": participant["event_id"]}, {"$inc": {"registered": -1}}
                )
        # The events that carried its data are not kept either, published or not.
        keys = [company_id, *[p["_id"] for p in participants]]
        await uow.forget_published({"key": {"$in": keys}})
        await uow.db[store.COMPANIES].delete_one({"_id": company_id})
        await uow.db[store.PARTICIPANTS].delete_many({"data.company_id": company_id})
        # What remains: that an erasure happened, and when — no personal data.
        await uow.db[store.ERASURES].insert_one(
            {"_id": company_id, "cluster_id": cluster_id, "erased_at": datetime.now(UTC)}
        )
        uow.emit(CompanyErased(company_id=company_id, cluster_id=cluster_id))

    await runtime.transact(work, correlation)


async def export(
    runtime: Runtime, caller: Principal, company_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything registration holds about the company (GDPR data portability): the company
    and its event registrations."""
    doc = await visible(runtime, caller, company_id)
    participations = await runtime.db[store.PARTICIPANTS].find({"data.company_id": company_id}).to_list(None)
    return doc, participations
