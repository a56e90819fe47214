"""Refused credentials are rate-limited per address: after `limit` refusals (401/403) in the
window, that address gets 429 with Retry-After, whatever it sends, until the window passes;
other addresses, and the health and metrics routes, are not affected."""

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException
from limits.errors import StorageError

from c2f_shared.service.limits import FailedAuthLimit, Refusals
from tests.support import eventually


def app_with_limit(limit: int, window: int = 60) -> FastAPI:
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
    app = app_with_limit(2, window=1)
    async with client(app, "203.0.113.8") as guesser:
        for _ in range(2):
            await guesser.get("/secret")
        assert (await guesser.get("/secret")).status_code == 429

        async def lifted() -> bool:
            answer = await guesser.get("/secret", headers={"Authorization": "Bearer right"})
            assert answer.status_code in (200, 429)
            return answer.status_code == 200

        await eventually(lifted, within=3)


def test_the_window_is_whole_seconds() -> None:
    with pytest.raises(ValueError, match="at least 1 s"):
        Refusals(3, window=0)


class Unreachable(Refusals):
    """A count whose database does not answer."""

    async def wait_for(self, address: str) -> int | None:
        raise StorageError(ConnectionError("no database"))

    async def refused(self, address: str) -> None:
        raise StorageError(ConnectionError("no database"))


@pytest.mark.asyncio
async def test_without_its_database_the_limit_lets_requests_through() -> None:
    app = FastAPI()

    @app.get("/secret")
    async def secret() -> dict[str, str]:
        raise HTTPException(401, "unknown token")

    app.add_middleware(FailedAuthLimit, refusals=Unreachable(1))
    async with client(app, "203.0.113.9") as guesser:
        for _ in range(3):
            assert (await guesser.get("/secret")).status_code == 401


@pytest.mark.asyncio
async def test_a_clear_address_is_not_looked_up_again_for_a_moment_but_a_refusal_counts_at_once() -> None:
    refusals = Refusals(limit=2, window=60)
    lookups: list[str] = []
    window = refusals._window

    def counted(address: str) -> tuple[float | None, int]:
        lookups.append(address)
        return window(address)

    refusals._window = counted  # type: ignore[method-assign]
    for _ in range(50):  # a busy client: one lookup, not one per request (the shared store's cost)
        assert await refusals.wait_for("192.0.2.1") is None
    assert lookups == ["192.0.2.1"]
    await refusals.refused("192.0.2.1")
    await refusals.refused("192.0.2.1")
    assert await refusals.wait_for("192.0.2.1") is not None, "refused here: looked up again at once"
    assert lookups == ["192.0.2.1", "192.0.2.1"]
