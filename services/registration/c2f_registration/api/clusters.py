"""Clusters of the partnership, their API keys, and partnership agreements."""

from typing import Any

from fastapi import APIRouter, Request, Response

from c2f_registration import api_keys, clusters
from c2f_registration.api import auth
from c2f_registration.api.common import CREATED, OWN_CLUSTER, created
from c2f_registration.schemas import (
    AgreementIn,
    AgreementOut,
    ApiKeyCreated,
    ApiKeyInfo,
    ClusterIn,
    ClusterOut,
)
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
    caller: auth.Operator,
) -> ClusterOut:
    """Register a cluster of the partnership (operator only). The answer that creates it
    carries the cluster's first API key, shown once. An instance configured for some
    clusters (C2F_REGISTRATION_CLUSTERS) registers only those."""
    served: frozenset[str] = request.app.state.served_clusters
    stored = created(response, await clusters.register(runtime, caller, body, served, correlation))
    return _out(stored.doc, stored.created, stored.extra)


@router.get("/clusters", response_model=list[ClusterOut])
async def list_clusters(runtime: RuntimeDep, _: auth.Caller) -> list[ClusterOut]:
    """The partnership's clusters (public within the partnership)."""
    return [_out(d) for d in await clusters.listing(runtime)]


@router.get(
    "/clusters/{cluster_id}", response_model=ClusterOut, responses={404: {"description": "No such cluster"}}
)
async def get_cluster(cluster_id: str, runtime: RuntimeDep, _: auth.Caller) -> ClusterOut:
    return _out(await clusters.get(runtime, cluster_id))


@router.post(
    "/clusters/{cluster_id}/api-keys", status_code=201, response_model=ApiKeyCreated, responses=OWN_CLUSTER
)
async def create_api_key(cluster_id: str, runtime: RuntimeDep, caller: auth.Caller) -> dict[str, Any]:
    """A new key for the cluster (to rotate: make a new one, switch, revoke the old one)."""
    return await api_keys.create(runtime, caller, cluster_id)


@router.get("/clusters/{cluster_id}/api-keys", response_model=list[ApiKeyInfo], responses=OWN_CLUSTER)
async def list_api_keys(cluster_id: str, runtime: RuntimeDep, caller: auth.Caller) -> list[ApiKeyInfo]:
    """The cluster's keys: ids and dates only, never the secrets."""
    return [
        ApiKeyInfo(id=d["_id"], cluster_id=cluster_id, created_at=d["created_at"], revoked_at=d["revoked_at"])
        for d in await api_keys.listing(runtime, caller, cluster_id)
    ]


@router.delete(
    "/clusters/{cluster_id}/api-keys/{key_id}",
    status_code=204,
    responses={**OWN_CLUSTER, 404: {"description": "No such cluster served here, or no such key"}},
)
async def revoke_api_key(cluster_id: str, key_id: str, runtime: RuntimeDep, caller: auth.Caller) -> None:
    """Revoke a key: it stops working at once."""
    await api_keys.revoke(runtime, caller, cluster_id, key_id)


@router.post(
    "/agreements", status_code=201, response_model=AgreementOut, responses=CREATED, tags=["partnership"]
)
async def sign_agreement(
    body: AgreementIn,
    response: Response,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    caller: auth.Operator,
) -> AgreementOut:
    """Record a partnership agreement (operator only): how clusters join after the founding ones."""
    stored = created(response, await clusters.sign_agreement(runtime, caller, body, correlation))
    return AgreementOut(**stored.data, id=stored.id, created=stored.created)


@router.get("/agreements", response_model=list[AgreementOut], tags=["partnership"])
async def list_agreements(runtime: RuntimeDep, _: auth.Caller) -> list[AgreementOut]:
    """The partnership's agreements, oldest first."""
    return [AgreementOut(**d["data"], id=d["_id"], created=False) for d in await clusters.agreements(runtime)]
