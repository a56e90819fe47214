"""One registration instance per cluster: each with its own database, all on the same topics.

Two instances (DTI's and Acclima's) and matching run as real processes. Acclima's
member signs up, through Acclima's instance, for an event DTI's instance hosts;
the capacity DTI set holds across both; matching pairs members of both.
"""

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from c2f_cli.processes import Child, free_port, spawn, wait_until_ready
from c2f_cli.stack import Stack
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RUN = uuid.uuid4().hex[:8]


def _service(infra: Stack, name: str, module: str, env: dict[str, str]) -> tuple[Child, str]:
    port = free_port()
    child = spawn(
        f"{name}-{RUN}",
        [sys.executable, "-m", "uvicorn", f"{module}.app:create_app", "--factory", "--port", str(port)],
        infra.logs,
        env={**infra.service_env(module.removeprefix("c2f_")), **env},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(child, url)
    return child, url


@pytest.fixture(scope="module")
def instances(infra: Stack) -> Iterator[dict[str, str]]:
    started = []
    try:
        urls = {}
        for short_name in ("DTI", "Acclima"):
            child, urls[short_name] = _service(
                infra,
                f"registration-{short_name}",
                "c2f_registration",
                {"C2F_REGISTRATION_CLUSTERS": short_name},  # its own database and group follow from it
            )
            started.append(child)
        child, urls["matching"] = _service(
            infra,
            "matching",
            "c2f_matching",
            {"C2F_MATCHING_MONGO_DB": f"matching_{RUN}", "C2F_MATCHING_CONSUMER_GROUP": f"matching-{RUN}"},
        )
        started.append(child)
        yield urls
    finally:
        for child in reversed(started):
            child.stop()


def operator(infra: Stack, url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {infra.config.operator_token()}"}
    )


def company(cluster_id: str, name: str, offers: list[Any], needs: list[Any]) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "legal_name": name,
        "country": "BG",
        "sectors": ["ict"],
        "offers": offers,
        "needs": needs,
    }


async def test_each_cluster_signs_up_through_its_own_instance(
    infra: Stack, instances: dict[str, str]
) -> None:
    async with operator(infra, instances["DTI"]) as dti, operator(infra, instances["Acclima"]) as acclima:
        not_served = await dti.post(
            "/clusters",
            json={"name": "Acclima", "short_name": "Acclima", "country": "ES", "sectors": ["ict"]},
        )
        assert not_served.status_code == 422 and not_served.json()["detail"][0]["loc"] == [
            "body",
            "short_name",
        ]

        dti_id = (
            await dti.post(
                "/clusters", json={"name": "DTI", "short_name": "DTI", "country": "BG", "sectors": ["ict"]}
            )
        ).json()["id"]
        acclima_id = (
            await acclima.post(
                "/clusters",
                json={"name": "Acclima", "short_name": "Acclima", "country": "ES", "sectors": ["ict"]},
            )
        ).json()["id"]
        assert dti_id != acclima_id

        need = {
            "title": "Сензори",
            "description": "Сензори за въздух",
            "kind": "supplier",
            "category": "air_quality_monitoring",
            "language": "bg",
        }
        offer = {
            "title": "Sensores",
            "description": "Sensores de aire",
            "category": "air_quality_monitoring",
            "language": "es",
        }
        seeker = (await dti.post("/companies", json=company(dti_id, "ЕърДата", [], [need]))).json()["id"]
        provider = (
            await acclima.post(
                "/companies", json={**company(acclima_id, "Sensores SL", [offer], []), "country": "ES"}
            )
        ).json()["id"]
        late = (
            await acclima.post(
                "/companies", json={**company(acclima_id, "Tarde SL", [offer], []), "country": "ES"}
            )
        ).json()["id"]

        event = (
            await dti.post(
                "/events",
                json={
                    "name": "Sofia B2B",
                    "host_cluster_id": dti_id,
                    "city": "Sofia",
                    "country": "BG",
                    "venue_timezone": "Europe/Sofia",
                    "starts_at": "2027-03-16T09:00:00+02:00",
                    "ends_at": "2027-03-16T17:00:00+02:00",
                    "capacity": 2,
                },
            )
        ).json()

        # Acclima's instance learns of DTI's event from the topic.
        async def known_at_acclima() -> bool:
            return (await acclima.get(f"/events/{event['id']}")).status_code == 200

        await eventually(known_at_acclima)
        foreign = (await acclima.get(f"/events/{event['id']}")).json()
        assert foreign["name"] == "Sofia B2B"
        assert (await acclima.patch(f"/events/{event['id']}", json={"name": "Hijacked"})).status_code == 409

        attendee = {"name": "A", "email": "a@example.org", "language": "es"}
        signed = await acclima.post(
            f"/events/{event['id']}/participants", json={"company_id": provider, "attendee": attendee}
        )
        assert signed.status_code == 201, signed.text
        assert (
            await dti.post(
                f"/events/{event['id']}/participants",
                json={"company_id": seeker, "attendee": {**attendee, "language": "bg"}},
            )
        ).status_code == 201

        # DTI's capacity of 2 is full for both instances once each has heard of the other's sign-up.
        async def full_everywhere() -> bool:
            counts = [(await c.get(f"/events/{event['id']}")).json()["registered"] for c in (dti, acclima)]
            return counts == [2, 2]

        await eventually(full_everywhere)
        refused = await acclima.post(
            f"/events/{event['id']}/participants", json={"company_id": late, "attendee": attendee}
        )
        assert refused.status_code == 409 and "full" in refused.json()["detail"]

    async with operator(infra, instances["matching"]) as matching:

        async def matched() -> bool:
            return len((await matching.get(f"/events/{event['id']}/suggestions")).json()) == 1

        await eventually(matched)

    # Each instance stored only its own cluster's members.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.config.mongo_uri_of("registration"))
    try:
        assert [c["_id"] for c in await client["c2f_registration_dti"]["companies"].find().to_list(None)] == [
            seeker
        ]
        assert sorted(
            c["_id"] for c in await client["c2f_registration_acclima"]["companies"].find().to_list(None)
        ) == sorted([provider, late])
    finally:
        await client.close()
