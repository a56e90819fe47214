"""The partnership's clusters and the agreements they sign.

A cluster is registered by the operator, once per short name, on the instance
that serves it; the answer that creates it carries its first API key.
"""

from typing import Any

from c2f_registration import api_keys, store
from c2f_registration.api_keys import Principal
from c2f_registration.errors import Invalid, NotFound
from c2f_registration.schemas import AgreementIn, ClusterIn
from c2f_shared.events import ClusterRegistered, PartnershipAgreementSigned
from c2f_shared.service import Runtime, UnitOfWork


def served_here(short_name: str, served: frozenset[str]) -> None:
    """Invalid unless this instance serves the cluster (`served` empty: it serves all)."""
    if served and short_name.casefold() not in served:
        raise Invalid(
            [
                {
                    "loc": ("body", "short_name"),
                    "msg": f"this registration instance serves only: {', '.join(sorted(served))}",
                    "type": "value_error.not_served",
                }
            ]
        )


async def register(
    runtime: Runtime, caller: Principal, cluster: ClusterIn, served: frozenset[str], correlation: str
) -> store.Stored:
    """Register the cluster (operator only); `extra` of the answer is its first API key when new."""
    caller.require_operator()
    served_here(cluster.short_name, served)
    data = cluster.model_dump(mode="json")

    async def first_key(uow: UnitOfWork, cluster_id: str) -> dict[str, Any]:
        return await api_keys.new_api_key(uow.db, cluster_id)

    return await store.register_once(
        runtime,
        store.CLUSTERS,
        cluster.short_name.casefold(),
        data,
        lambda new_id: ClusterRegistered(cluster_id=new_id, **data),
        correlation,
        on_created=first_key,
    )


async def listing(runtime: Runtime) -> list[dict[str, Any]]:
    """Every cluster of the partnership, served here or elsewhere, oldest first."""
    return await runtime.db[store.CLUSTERS].find().sort("created_at").to_list(None)


async def get(runtime: Runtime, cluster_id: str) -> dict[str, Any]:
    doc = await store.get(runtime, store.CLUSTERS, cluster_id)
    if doc is None:
        raise NotFound("cluster", cluster_id)
    return doc


async def sign_agreement(
    runtime: Runtime, caller: Principal, agreement: AgreementIn, correlation: str
) -> store.Stored:
    """Record a partnership agreement (operator only) between known clusters."""
    caller.require_operator()
    for index, cluster_id in enumerate(agreement.cluster_ids):
        if await store.get(runtime, store.CLUSTERS, cluster_id) is None:
            raise Invalid.field(("cluster_ids", index), f"unknown cluster {cluster_id!r}")
    data = agreement.model_dump(mode="json")
    return await store.register_once(
        runtime,
        store.AGREEMENTS,
        f"{agreement.signed_on}:{agreement.title.casefold()}",
        data,
        lambda new_id: PartnershipAgreementSigned(agreement_id=new_id, **data),
        correlation,
    )


async def agreements(runtime: Runtime) -> list[dict[str, Any]]:
    """The partnership's agreements, oldest first."""
    return await runtime.db[store.AGREEMENTS].find().sort("data.signed_on").to_list(None)
