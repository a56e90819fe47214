"""Registration's store on the real database: registered once even when asked at the same
moment, changes that lost a race are refused, and the outbox holds exactly what changed."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fastapi import FastAPI

from c2f_cli.stack import Stack
from c2f_registration import store
from c2f_shared.events import ClusterRegistered
from c2f_shared.service import Runtime
from tests.support import isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(infra: Stack) -> AsyncIterator[Runtime]:
    runtime = Runtime(isolated_settings(infra, "store"), service="registration-test")
    runtime.on_start(store.ensure_indexes)
    async with runtime.lifespan(FastAPI()):
        yield runtime


def cluster_event(cluster_id: str) -> ClusterRegistered:
    return ClusterRegistered(
        cluster_id=cluster_id,
        name="Lombard",
        short_name="LMC",
        country="IT",
        sectors=["mobility"],
        membership="founding",
    )


async def test_the_same_registration_at_the_same_moment_is_stored_once(runtime: Runtime) -> None:
    data = {"name": "Lombard mobility cluster", "short_name": "LMC"}
    results = await asyncio.gather(
        *(store.register_once(runtime, store.CLUSTERS, "lmc", data, cluster_event, "c") for _ in range(8))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert await runtime.db[store.CLUSTERS].count_documents({}) == 1
    assert await runtime.db["outbox"].count_documents({"type": "ClusterRegistered"}) == 1


async def test_different_data_under_the_same_key_is_a_conflict(runtime: Runtime) -> None:
    await store.register_once(runtime, store.CLUSTERS, "gh", {"name": "GreenHome"}, cluster_event, "c")
    with pytest.raises(store.Conflict, match="already registered with different data"):
        await store.register_once(
            runtime, store.CLUSTERS, "gh", {"name": "GreenHome srl"}, cluster_event, "c"
        )


async def test_a_change_based_on_a_stale_read_is_refused(runtime: Runtime) -> None:
    stored = await store.register_once(runtime, store.CLUSTERS, "hm", {"name": "HAMAC"}, cluster_event, "c")
    first, changed = await store.replace(
        runtime,
        store.CLUSTERS,
        stored.doc,
        "hm",
        {"name": "HAMAC A.E."},
        lambda rev: cluster_event(stored.id),
        "c",
    )
    assert changed and first["revision"] == 2
    unchanged, changed_again = await store.replace(
        runtime,
        store.CLUSTERS,
        first,
        "hm",
        {"name": "HAMAC A.E."},
        lambda rev: cluster_event(stored.id),
        "c",
    )
    assert not changed_again and unchanged["revision"] == 2
    with pytest.raises(store.Conflict, match="changed by someone else"):
        await store.replace(
            runtime,
            store.CLUSTERS,
            stored.doc,
            "hm",
            {"name": "Stale"},
            lambda rev: cluster_event(stored.id),
            "c",
        )
    assert (await store.get(runtime, store.CLUSTERS, stored.id))["data"] == {"name": "HAMAC A.E."}  # type: ignore[index]
