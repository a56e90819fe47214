"""Clusters of the partnership, and their API keys."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from c2f_registration import auth, store
from c2f_registration.api.common import CREATED, OWN_CLUSTER, not_found, register
from c2f_registration.schemas import (
    AgreementIn,
    AgreementOut,
    ApiKeyCreated,
    ApiKeyInfo,
    ClusterIn,
    ClusterOut,
)
from c2f_shared.events import ClusterRegistered, PartnershipAgreementSigned
from c2f_shared.service import UnitOfWork
from c2f_shared.service.http import CorrelationId, RuntimeDep

router = APIRouter(tags=["clusters"])


def _out(doc: dict[str, Any], created: bool = False, api_key: dict[str, Any] | None = None) -> ClusterOut:
    return ClusterOut(**doc["data"], id=doc["_id"], created=created, api_key=api_key)


@router.post("/clusters", status_code=201, response_model=ClusterOut, responses=CREATED)
async def register_cluster(
    body: ClusterIn,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    _: auth.Operator,
) -> ClusterOut:
    """Register a cluster of the partnership (operator only). The answer that creates it
    carries the cluster's first API key, shown once. An instance configured for some
    clusters (C2F_REGISTRATION_CLUSTERS) registers only those."""
    served: frozenset[str] = request.app.state.served_clusters
    if served and body.short_name.casefold() not in served:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "short_name"),
                    "msg": f"this registration instance serves only: {', '.join(sorted(served))}",
                    "type": "value_error.not_served",
                }
            ]
        )
    data = body.model_dump(mode="json")

    async def first_key(uow: UnitOfWork, cluster_id: str) -> dict[str, Any]:
        return await auth.new_api_key(uow.db, cluster_id, session=uow.session)

    stored = await register(
        response,
        runtime,
        store.CLUSTERS,
        body.short_name.casefold(),
        data,
        lambda new_id: ClusterRegistered(cluster_id=new_id, **data),
        correlation,
        on_created=first_key,
    )
    return _out(stored.doc, stored.created, stored.extra)


@router.get("/clusters", response_model=list[ClusterOut])
async def list_clusters(runtime: RuntimeDep, _: auth.Caller) -> list[ClusterOut]:
    """The partnership's clusters (public within the partnership)."""
    docs = await runtime.db[store.CLUSTERS].find().sort("created_at").to_list(None)
    return [_out(d) for d in docs]


@router.get(
    "/clusters/{cluster_id}", response_model=ClusterOut, responses={404: {"description": "No such cluster"}}
)
async def get_cluster(cluster_id: str, runtime: RuntimeDep, _: auth.Caller) -> ClusterOut:
    doc = await store.get(runtime, store.CLUSTERS, cluster_id)
    if doc is None:
        raise not_found("cluster", cluster_id)
    return _out(doc)


async def _own_cluster(runtime: Any, caller: auth.Principal, cluster_id: str) -> None:
    if not caller.may_act_for(cluster_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an API key acts only for its own cluster")
    if await store.local_cluster(runtime, cluster_id) is None:
        raise not_found("cluster served here", cluster_id)


@router.post(
    "/clusters/{cluster_id}/api-keys", status_code=201, response_model=ApiKeyCreated, responses=OWN_CLUSTER
)
async def create_api_key(cluster_id: str, runtime: RuntimeDep, caller: auth.Caller) -> dict[str, Any]:
    """A new key for the cluster (to rotate: make a new one, switch, revoke the old one)."""
    await _own_cluster(runtime, caller, cluster_id)
    return await auth.new_api_key(runtime.db, cluster_id)


@router.get("/clusters/{cluster_id}/api-keys", response_model=list[ApiKeyInfo], responses=OWN_CLUSTER)
async def list_api_keys(cluster_id: str, runtime: RuntimeDep, caller: auth.Caller) -> list[ApiKeyInfo]:
    """The cluster's keys: ids and dates only, never the secrets."""
    await _own_cluster(runtime, caller, cluster_id)
    docs = await runtime.db[auth.API_KEYS].find({"cluster_id": cluster_id}).sort("created_at").to_list(None)
    return [
        ApiKeyInfo(id=d["_id"], cluster_id=cluster_id, created_at=d["created_at"], revoked_at=d["revoked_at"])
        for d in docs
    ]


@router.delete(
    "/clusters/{cluster_id}/api-keys/{key_id}",
    status_code=204,
    responses={**OWN_CLUSTER, 404: {"description": "No such cluster served here, or no such key"}},
)
async def revoke_api_key(cluster_id: str, key_id: str, runtime: RuntimeDep, caller: auth.Caller) -> None:
    """Revoke a key: it stops working at once."""
    await _own_cluster(runtime, caller, cluster_id)
    result = await runtime.db[auth.API_KEYS].update_one(
        {"_id": key_id, "cluster_id": cluster_id, "revoked_at": None},
        {"$set": {"revoked_at": datetime.now(UTC)}},
    )
    if result.matched_count == 0 and not await runtime.db[auth.API_KEYS].find_one(
        {"_id": key_id, "cluster_id": cluster_id}
    ):
        raise not_found("API key", key_id)


@router.post(
    "/agreements", status_code=201, response_model=AgreementOut, responses=CREATED, tags=["partnership"]
)
async def sign_agreement(
    body: AgreementIn, response: Response, runtime: RuntimeDep, correlation: CorrelationId, _: auth.Operator
) -> AgreementOut:
    """Record a partnership agreement (operator only): how clusters join after the founding ones."""
    for index, cluster_id in enumerate(body.cluster_ids):
        if await store.get(runtime, store.CLUSTERS, cluster_id) is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "cluster_ids", index),
                        "msg": f"unknown cluster {cluster_id!r}",
                        "type": "value_error",
                    }
                ]
            )
    data = body.model_dump(mode="json")
    stored = await register(
        response,
        runtime,
        store.AGREEMENTS,
        f"{body.signed_on}:{body.title.casefold()}",
        data,
        lambda new_id: PartnershipAgreementSigned(agreement_id=new_id, **data),
        correlation,
    )
    return AgreementOut(**stored.data, id=stored.id, created=stored.created)


@router.get("/agreements", response_model=list[AgreementOut], tags=["partnership"])
async def list_agreements(runtime: RuntimeDep, _: auth.Caller) -> list[AgreementOut]:
    """The partnership's agreements, oldest first."""
    docs = await runtime.db[store.AGREEMENTS].find().sort("data.signed_on").to_list(None)
    return [AgreementOut(**d["data"], id=d["_id"], created=False) for d in docs]
