"""Refused credentials are rate-limited per address: after `limit` refusals (401/403) in the
window, that address gets 429 with Retry-After, whatever it sends, until the window passes;
other addresses, and the health and metrics routes, are not affected."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException

from c2f_shared.service.limits import FailedAuthLimit


def app_with_limit(limit: int, window: float = 60.0) -> FastAPI:
    app = FastAPI()

    @app.get("/secret")
    async def secret(authorization: str = Header("")) -> dict[str, str]:
        if authorization != "Bearer right":
            raise HTTPException(401, "unknown token")
        return {"ok": "yes"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    app.add_middleware(FailedAuthLimit, limit=limit, window=window)
    return app


def client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.asyncio
async def test_an_address_that_keeps_guessing_is_slowed_down() -> None:
    app = app_with_limit(3)
    async with client(app, "203.0.113.7") as guesser, client(app, "198.51.100.1") as other:
        for _ in range(3):
            assert (
                await guesser.get("/secret", headers={"Authorization": "Bearer guess"})
            ).status_code == 401
        locked = await guesser.get("/secret", headers={"Authorization": "Bearer right"})
        assert locked.status_code == 429  # even the right token, from this address, for now
        assert 1 <= int(locked.headers["Retry-After"]) <= 60
        assert "too many refused credentials" in locked.json()["detail"]
        assert (await guesser.get("/healthz")).status_code == 200
        # Another address is not affected, and right answers never count.
        for _ in range(5):
            assert (await other.get("/secret", headers={"Authorization": "Bearer right"})).status_code == 200


@pytest.mark.asyncio
async def test_the_lock_lifts_once_the_refusals_are_older_than_the_window() -> None:
    app = app_with_limit(2, window=0.3)
    async with client(app, "203.0.113.8") as guesser:
        for _ in range(2):
            await guesser.get("/secret")
        assert (await guesser.get("/secret")).status_code == 429
        await asyncio.sleep(0.35)
        assert (await guesser.get("/secret", headers={"Authorization": "Bearer right"})).status_code == 200


def test_memory_is_bounded() -> None:
    limit = FailedAuthLimit(app_with_limit(1), limit=1)
    for n in range(FailedAuthLimit.MAX_ADDRESSES + 50):
        limit._note(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limit._refused) == FailedAuthLimit.MAX_ADDRESSES
