"""Matching across languages, end to end: registrations in Bulgarian, Spanish and Italian go in
over HTTP; the Bulgarian need meets the Spanish offer — on the topic and in the participant's
recommendations, with a reason that names both texts — above the Italian look-alike."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from c2f_cli.stack import Stack
from c2f_shared import topics
from tests.e2e.scene import Scene
from tests.support import as_operator, eventually, first_on_topic, settled

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NEED = "Сензори за качество на въздуха"
OFFER = "Sensores de calidad del aire"


async def test_a_need_in_bulgarian_meets_an_offer_in_spanish(platform: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    async with as_operator(platform) as operator:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await operator.post(path, json=body)
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        clusters = {
            country: (
                await post(
                    "/clusters",
                    {
                        "name": f"{country} {run}",
                        "short_name": f"{country}{run}",
                        "country": country,
                        "sectors": ["ict"],
                    },
                )
            )["id"]
            for country in ("BG", "ES", "IT")
        }

        def company(country: str, name: str, **profile: Any) -> dict[str, Any]:
            return {
                "cluster_id": clusters[country],
                "legal_name": f"{name} {run}",
                "country": country,
                "sectors": ["environmental_technologies"],
                **profile,
            }

        seeker = await post(
            "/companies",
            company(
                "BG",
                "ВъздухДата",
                needs=[
                    {
                        "title": NEED,
                        "description": "Търсим доставчик на станции, които измерват фини прахови частици"
                        " и азотен диоксид.",
                        "kind": "supplier",
                        "language": "bg",
                    }
                ],
                target_markets=["MX"],
            ),
        )
        provider = await post(
            "/companies",
            company(
                "ES",
                "Aire Limpio",
                offers=[
                    {
                        "title": OFFER,
                        "description": "Estaciones IoT que miden partículas PM2.5 y NO2 en tiempo real"
                        " para ayuntamientos.",
                        "category": "air_quality_monitoring",
                        "language": "es",
                    }
                ],
                target_markets=["MX"],
            ),
        )
        lookalike = await post(
            "/companies",
            company(
                "IT",
                "Sosta Facile",
                offers=[
                    {
                        "title": "Sensori per parcheggi",
                        "description": "Sensori magnetici che rilevano i posti auto liberi in strada.",
                        "category": "smart_parking",
                        "language": "it",
                    }
                ],
                target_markets=["MX"],
            ),
        )
        event = await post(
            "/events",
            {
                "name": f"Matching day {run}",
                "host_cluster_id": clusters["BG"],
                "city": "Sofia",
                "country": "BG",
                "venue_timezone": "Europe/Sofia",
                "starts_at": "2027-04-01T09:00:00+03:00",
                "ends_at": "2027-04-01T17:00:00+03:00",
                "meetings": {"days": ["2027-04-01"], "day_start": "09:00", "day_end": "12:00"},
            },
        )
        attendee = {"name": "N", "email": f"n{run}@example.org", "language": "bg"}
        me = await post(
            f"/events/{event['id']}/participants", {"company_id": seeker["id"], "attendee": attendee}
        )
        for other in (provider, lookalike):
            await post(
                f"/events/{event['id']}/participants",
                {
                    "company_id": other["id"],
                    "attendee": {**attendee, "email": f"{other['id'][:8]}@example.org"},
                },
            )

    def our_pair(record: Any) -> bool:
        data = json.loads(record.value)["data"]
        companies = {p["company_id"] for p in data["parties"]}
        return bool(data["event_id"] == event["id"] and companies == {seeker["id"], provider["id"]})

    record = await first_on_topic(platform.config.kafka_bootstrap, topics.MATCH_SUGGESTIONS, our_pair)
    found = json.loads(record.value)["data"]
    assert any(r["offer_title"] == OFFER and r["need_title"] == NEED for r in found["reasons"]), found[
        "reasons"
    ]

    async with as_operator(platform, "matching") as matching:
        matching.headers["Authorization"] = f"Bearer {me['access_token']}"
        recommended = (await matching.get(f"/participants/{me['id']}/recommendations")).json()
        assert recommended[0]["company_id"] == provider["id"], recommended
        assert f"offers “{OFFER}” — matches your need “{NEED}”" in recommended[0]["reasons"]
        assert "connects Bulgaria and Spain" in recommended[0]["reasons"]
        scores = {r["company_id"]: r["score"] for r in recommended}
        assert scores[provider["id"]] > scores.get(lookalike["id"], 0.0)

        # Once asked for a meeting, a partner is no longer news; back after a cancellation.
        partner = recommended[0]["participant_id"]
        asked = await matching.post(f"/participants/{me['id']}/meetings", json={"with": [partner]})
        assert asked.status_code == 201, asked.text
        now = (await matching.get(f"/participants/{me['id']}/recommendations")).json()
        assert partner not in [r["participant_id"] for r in now]
        assert (await matching.post(f"/meetings/{asked.json()['id']}/cancel")).status_code == 200
        now = (await matching.get(f"/participants/{me['id']}/recommendations")).json()
        assert now[0]["participant_id"] == partner

        matching.headers["Authorization"] = "Bearer c2fp.someone.else"
        assert (await matching.get(f"/participants/{me['id']}/recommendations")).status_code == 403
        matching.headers["Authorization"] = f"Bearer {platform.config.operator_token()}"
        pairs = (await matching.get(f"/events/{event['id']}/pairs")).json()
        assert {pairs[0]["a"]["company_id"], pairs[0]["b"]["company_id"]} == {seeker["id"], provider["id"]}

        # A changed profile is reflected within seconds: the provider now sells insulation.
        async with as_operator(platform) as registration:
            changed = await registration.patch(
                f"/companies/{provider['id']}",
                json={
                    "offers": [
                        {
                            "title": "Paneles aislantes",
                            "description": "Aislamiento térmico de fachadas.",
                            "category": "insulation_materials",
                            "language": "es",
                        }
                    ]
                },
            )
            assert changed.status_code == 200

        async def provider_dropped() -> bool:
            again = (await matching.get(f"/participants/{me['id']}/recommendations")).json()
            return all(
                r["company_id"] != provider["id"] or r["score"] < recommended[0]["score"] for r in again
            )

        await eventually(provider_dropped)


async def test_partner_search_understands_any_language(platform: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    async with as_operator(platform) as registration:
        body = {"name": f"S {run}", "short_name": f"S{run}", "country": "ES", "sectors": ["ict"]}
        cluster = (await registration.post("/clusters", json=body)).json()
        offer = {
            "title": OFFER,
            "description": "Estaciones que miden partículas y NO2 para ayuntamientos.",
            "category": "air_quality_monitoring",
            "language": "es",
        }
        company = {
            "cluster_id": cluster["id"],
            "legal_name": f"Aire {run}",
            "country": "ES",
            "sectors": ["ict"],
        }
        assert (await registration.post("/companies", json={**company, "offers": [offer]})).status_code == 201
    async with as_operator(platform, "matching") as matching:

        async def search(q: str, **filters: str) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await matching.get("/search", params={"q": q, **filters})).json()
            return found

        async def indexed() -> bool:
            return any(h["company_name"] == f"Aire {run}" for h in await search("sensores", limit="100"))

        await eventually(indexed)
        hits = await search("αισθητήρες ποιότητας αέρα για δήμους", limit="100")
        by_name = {h["company_name"].rsplit(" ", 1)[0]: h for h in hits}
        assert hits[0]["offer_title"] == OFFER
        assert hits[0]["score"] > by_name["Sosta Facile"]["score"]
        spain = await search("air quality sensors", country="ES")
        assert spain and all(h["country"] == "ES" for h in spain)
        matching.headers["Authorization"] = "Bearer nonsense"
        assert (await matching.get("/search", params={"q": "air"})).status_code == 403


async def test_the_read_model_rebuilds_from_the_topics(platform: Stack) -> None:
    async with as_operator(platform, "matching") as matching:
        before = (await matching.get("/search", params={"q": "сензори за въздух", "limit": 100})).json()
        assert (
            await matching.post("/admin/rebuild", headers={"Authorization": "Bearer nope"})
        ).status_code == 403
        rebuilt = await matching.post("/admin/rebuild")
        assert rebuilt.status_code == 200, rebuilt.text
        assert rebuilt.json()["replayed"] > 0
        after = (await matching.get("/search", params={"q": "сензори за въздух", "limit": 100})).json()
    assert after == before


async def test_webinars_are_not_matchmaking(platform: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    async with as_operator(platform) as operator:
        cluster = (
            await operator.post(
                "/clusters",
                json={"name": f"W {run}", "short_name": f"W{run}", "country": "GR", "sectors": ["ict"]},
            )
        ).json()
        need = {
            "title": NEED,
            "description": "Търсим сензори.",
            "kind": "supplier",
            "category": "air_quality_monitoring",
            "language": "bg",
        }
        offer = {
            "title": OFFER,
            "description": "Sensores.",
            "category": "air_quality_monitoring",
            "language": "es",
        }
        seeker, provider = [
            (
                await operator.post(
                    "/companies",
                    json={
                        "cluster_id": cluster["id"],
                        "legal_name": f"{role} {run}",
                        "country": "GR",
                        "sectors": ["ict"],
                        **lists,
                    },
                )
            ).json()
            for role, lists in (("S", {"needs": [need]}), ("P", {"offers": [offer]}))
        ]
        webinar = (
            await operator.post(
                "/events",
                json={
                    "name": f"Webinar {run}",
                    "kind": "webinar",
                    "topic": "Air",
                    "host_cluster_id": cluster["id"],
                    "city": "Athens",
                    "country": "GR",
                    "venue_timezone": "Europe/Athens",
                    "starts_at": "2027-04-01T09:00:00+03:00",
                    "ends_at": "2027-04-01T10:00:00+03:00",
                },
            )
        ).json()
        for i, company in enumerate((seeker, provider)):
            signup = {
                "company_id": company["id"],
                "attendee": {"name": "N", "email": f"w{i}{run}@example.org", "language": "el"},
            }
            assert (
                await operator.post(f"/events/{webinar['id']}/participants", json=signup)
            ).status_code == 201
    await eventually(lambda: settled(platform.config), within=60)
    async with as_operator(platform, "matching") as matching:
        assert (await matching.get(f"/events/{webinar['id']}/suggestions")).json() == []


async def test_delegations_at_a_c2c_event_see_the_clusters_that_complement_theirs(scene: Scene) -> None:
    """Three clusters send delegations: the Spanish one's members offer what the Bulgarian
    one's need and need what they offer; the Italian one only shares words. The Bulgarian
    delegation sees the Spanish first, with reasons; the operator sees the same among every
    cluster in the registry."""
    bg, es, it = [await scene.cluster(c) for c in ("BG", "ES", "IT")]

    async def member(cluster: str, name: str, country: str, **profile: Any) -> None:
        body = {"cluster_id": cluster, "legal_name": f"{name} {scene.run}", "country": country}
        await scene.post("/companies", {**body, "sectors": ["environmental_technologies"], **profile})

    def item(title: str, description: str, language: str, **more: str) -> dict[str, str]:
        return {"title": title, "description": description, "language": language, **more}

    need = item(NEED, "Търсим станции за фини прахови частици и азотен диоксид.", "bg", kind="supplier")
    await member(bg, "ВъздухДата", "BG", needs=[need], target_markets=["MX"])
    await member(
        bg,
        "Градски данни",
        "BG",
        offers=[
            item(
                "Платформа за градски данни",
                "Отворена платформа, която събира данни от сензори и ги показва на общината.",
                "bg",
                category="urban_data_platforms",
            )
        ],
    )
    await member(
        es,
        "Aire Limpio",
        "ES",
        offers=[
            item(OFFER, "Estaciones IoT que miden PM2.5 y NO2.", "es", category="air_quality_monitoring")
        ],
        connections=[{"market": "MX"}],
    )
    await member(
        es,
        "Ciudad Abierta",
        "ES",
        needs=[
            item(
                "Plataforma de datos urbanos",
                "Buscamos una plataforma que reúna los datos de los sensores municipales.",
                "es",
                kind="technology",
            )
        ],
    )
    await member(
        it,
        "Sosta Facile",
        "IT",
        offers=[
            item(
                "Sensori per parcheggi",
                "Sensori che rilevano i posti liberi.",
                "it",
                category="smart_parking",
            )
        ],
    )
    host_day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    c2c = await scene.event(bg, kind="c2c", day=host_day)
    ours, spanish, italian = [await scene.sign_up(c2c, {"delegation_of": c}) for c in (bg, es, it)]

    async def spanish_first() -> bool:
        answer = await scene.as_(ours).get(f"/participants/{ours}/recommendations")
        assert answer.status_code == 200, answer.text
        return bool(answer.json()) and answer.json()[0]["participant_id"] == spanish

    await eventually(spanish_first)
    first, *rest = (await scene.as_(ours).get(f"/participants/{ours}/recommendations")).json()
    assert first["cluster_id"] == es and first["company_id"] is None
    assert first["reasons"][0].startswith("1 of your members need what 1 of theirs offer: “Sensores")
    assert first["reasons"][1].startswith("1 of their members need what 1 of yours offer")
    assert "Mexico" in first["reasons"][2]
    assert all(r["score"] < first["score"] for r in rest)
    # another delegation does not read ours
    assert (await scene.as_(italian).get(f"/participants/{ours}/recommendations")).status_code == 403

    candidates = await scene.as_operator().get(f"/clusters/{bg}/partner-candidates", params={"limit": 100})
    assert candidates.status_code == 200, candidates.text
    ranked = [c["cluster_id"] for c in candidates.json()]
    assert es in ranked and (it not in ranked or ranked.index(es) < ranked.index(it))
    assert bg not in ranked
    assert (await scene.as_(ours).get(f"/clusters/{bg}/partner-candidates")).status_code == 403
    assert (await scene.as_operator().get("/clusters/nowhere/partner-candidates")).status_code == 404
