"""A scene for end-to-end tests of meetings and notifications: clusters, companies, events
and participants made over HTTP on the shared platform, and requests made with each
participant's own token."""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from c2f_cli.stack import Stack
from tests.support import as_operator, b2b_event, eventually

TZ = "Europe/Madrid"
SLOTS = ["09:00", "09:30", "10:00", "11:00", "11:30"]  # 10:30-11:00 is a break


class Scene:
    def __init__(self, platform: Stack, registration: httpx.AsyncClient, matching: httpx.AsyncClient) -> None:
        self.platform, self.registration, self.matching = platform, registration, matching
        self.run = uuid.uuid4().hex[:6]
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.registration.post(path, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def cluster(self, country: str) -> str:
        body = {"name": f"C{country} {self.run}", "short_name": f"C{country}{self.run}", "country": country}
        return str((await self.post("/clusters", {**body, "sectors": ["ict"]}))["id"])

    async def company(self, cluster: str, name: str, country: str = "ES") -> str:
        body = {
            "cluster_id": cluster,
            "legal_name": f"{name} {self.run}",
            "country": country,
            "sectors": ["ict"],
        }
        return str((await self.post("/companies", body))["id"])

    async def event(self, host: str, kind: str = "b2b", day: str | None = None, **rules: Any) -> str:
        day = day or (datetime.now(UTC) - timedelta(days=1)).date().isoformat()  # yesterday: outcomes
        plan = {
            "days": [day],
            "day_start": "09:00",
            "day_end": "12:00",
            "slot_minutes": 30,
            "breaks": [{"start": "10:30", "end": "11:00"}],
            "tables": 2,
            **rules,
        }
        body = {
            "name": f"Brokerage {kind} {uuid.uuid4().hex[:6]}",
            "kind": kind,
            "host_cluster_id": host,
            "venue": "Palacio de Congresos",
            "city": "Valencia",
            "country": "ES",
            "venue_timezone": TZ,
            "starts_at": f"{day}T08:00:00+01:00",
            "ends_at": f"{day}T13:00:00+01:00",
            "meetings": plan,
        }
        return str((await self.post("/events", body))["id"])

    async def sign_up(self, event: str, who: dict[str, str], language: str = "es", **extra: Any) -> str:
        attendee = {"name": f"Ana {uuid.uuid4().hex[:4]}", "email": f"{uuid.uuid4().hex[:8]}@example.org"}
        body = {**who, "attendee": {**attendee, "language": language}, **extra}
        created = await self.post(f"/events/{event}/participants", body)
        self.tokens[created["id"]] = created["access_token"]
        self.emails[created["id"]] = attendee["email"]
        # Matching knows the participant once its own token opens its meetings.
        await eventually(lambda: self._known(created["id"]))
        return str(created["id"])

    async def _known(self, pid: str) -> bool:
        return (await self.as_(pid).get(f"/participants/{pid}/meetings")).status_code == 200

    def as_(self, pid: str) -> httpx.AsyncClient:
        self.matching.headers["Authorization"] = f"Bearer {self.tokens[pid]}"
        return self.matching

    def as_operator(self) -> httpx.AsyncClient:
        self.matching.headers["Authorization"] = f"Bearer {self.platform.config.operator_token()}"
        return self.matching

    async def ask(self, pid: str, *others: str, expect: int = 201) -> dict[str, Any]:
        response = await self.as_(pid).post(f"/participants/{pid}/meetings", json={"with": list(others)})
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def answer(self, pid: str, meeting: str, action: str, expect: int = 200) -> dict[str, Any]:
        response = await self.as_(pid).post(f"/meetings/{meeting}/{action}")
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def schedule(self, event: str, seconds: float = 2) -> dict[str, Any]:
        response = await self.as_operator().post(f"/events/{event}/schedule", json={"seconds": seconds})
        assert response.status_code == 200, response.text
        published: dict[str, Any] = response.json()
        return published

    async def placements(self, event: str) -> dict[str, tuple[str, str]]:
        grid = (await self.as_operator().get(f"/events/{event}/schedule")).json()
        return {m["id"]: (m["placement"]["slot_id"], m["placement"]["table"]) for m in grid["meetings"]}


@pytest.fixture
async def scene(platform: Stack) -> AsyncIterator[Scene]:
    async with as_operator(platform) as registration, as_operator(platform, "matching") as matching:
        yield Scene(platform, registration, matching)


@dataclass
class Brokerage:
    """A cluster, its companies and a B2B event they can sign up for, made over HTTP."""

    cluster: str
    companies: list[str]
    event: str


async def brokerage(
    registration: httpx.AsyncClient,
    run: str,
    companies: int,
    *,
    country: str,
    city: str,
    timezone: str,
    name: str = "Brokerage",
    tables: int | None = None,
    days_ahead: int = 20,
    company: Callable[[int], dict[str, Any]] = lambda n: {},
) -> Brokerage:
    """`companies` companies of one new cluster and a B2B event `days_ahead` in `city`;
    `company(n)` adds fields to the n-th company (its offers and needs)."""

    async def created(path: str, body: dict[str, Any]) -> str:
        response = await registration.post(path, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    cluster = await created(
        "/clusters",
        {"name": f"{name} {run}", "short_name": f"B{run}", "country": country, "sectors": ["ict"]},
    )
    ids = [
        await created(
            "/companies",
            {
                "cluster_id": cluster,
                "legal_name": f"{name} {n} {run}",
                "country": country,
                "sectors": ["ict"],
                **company(n),
            },
        )
        for n in range(companies)
    ]
    event = await created(
        "/events",
        b2b_event(cluster, f"{name} {run}", city, country, timezone, days_ahead=days_ahead, tables=tables),
    )
    return Brokerage(cluster, ids, event)
