"""Two replicas of a service share the limit on refused credentials: they count in the
service's database (limits' MongoDB storage), so an address that spent the limit at one
replica gets 429 at the other, while other addresses are not affected.

Two instances of reporting's real app (service_app, the runtime's lifespan) on the session's
database and broker, called in-process with the client's address set."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from c2f_cli.stack import Stack
from c2f_reporting.app import create_app
from c2f_reporting.config import Settings
from c2f_shared.service.limits import Refusals
from tests.support import isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMIT = 3
GUESSER, OTHER = "203.0.113.21", "198.51.100.22"


@asynccontextmanager
async def replicas(infra: Stack, n: int) -> AsyncIterator[list[FastAPI]]:
    """`n` started instances of reporting sharing one database and consumer group."""
    settings = isolated_settings(
        infra,
        "refusals",
        Settings,
        operator_token=SecretStr(f"operator-{uuid.uuid4().hex}"),
        auth_failures_per_minute=LIMIT,
    )
    apps = [create_app(settings) for _ in range(n)]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield apps


def client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://reporting.test")


async def test_an_address_that_spent_the_limit_at_one_replica_is_refused_at_the_other(infra: Stack) -> None:
    async with replicas(infra, 2) as (first, second):
        async with client(first, GUESSER) as at_first, client(second, GUESSER) as at_second:
            for n in range(LIMIT):
                guess = await at_first.post("/admin/rebuild", headers={"Authorization": f"Bearer guess{n}"})
                assert guess.status_code in (401, 403), guess.text
            assert (await at_first.get("/reports/partnership")).status_code == 429
            locked = await at_second.get("/reports/partnership")
            assert locked.status_code == 429, "the second replica knows what the first counted"
            assert 1 <= int(locked.headers["Retry-After"]) <= 60
            assert (await at_second.get("/healthz")).status_code == 200
        async with client(second, OTHER) as other:
            assert (await other.get("/reports/partnership")).status_code == 200
        # The count is in the service's own database, where a TTL index clears it.
        db = first.state.runtime.db
        windows = await db[Refusals.WINDOWS].find().to_list(None)
        assert [w["_id"] for w in windows] == [f"LIMITER/{GUESSER}/{LIMIT}/60/second"]
        indexes = await db[Refusals.WINDOWS].index_information()
        assert any(i.get("expireAfterSeconds") == 0 for i in indexes.values())


async def test_refusals_older_than_the_window_leave_the_address_clear(infra: Stack) -> None:
    refusals = Refusals(limit=1, window=1)
    await refusals.share(infra.config.scratch_mongo_uri, f"refusals_{uuid.uuid4().hex[:10]}")
    try:
        await refusals.refused(GUESSER)
        assert await refusals.wait_for(GUESSER) is not None
        # The refusal leaves the window; its document stays until the TTL monitor removes it,
        # and limits' own window statistics fail on such a document.
        await asyncio.sleep(1.5)
        assert await refusals.wait_for(GUESSER) is None
    finally:
        await refusals.close()
