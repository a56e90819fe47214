"""Registration over real HTTP: operator and cluster keys, isolation between clusters,
full member profiles, and erasure that reaches every service's database."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from c2f_cli.databases import Databases
from c2f_cli.stack import Stack
from tests.infra import running_stack
from tests.support import as_operator, eventually, read_mail

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("registration"), services=True) as stack:
        yield stack


def with_key(stack: Stack, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=stack.config.service_url("registration"), headers=headers, timeout=30)


def without_nulls(value: Any) -> Any:
    """Optional fields left out come back as null; compare what was sent."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def cluster_body(short_name: str, country: str) -> dict[str, Any]:
    return {"name": f"{short_name} cluster", "short_name": short_name, "country": country, "sectors": ["ict"]}


FULL_PROFILE: dict[str, Any] = {
    "legal_name": "Άστυ Εφαρμογές Α.Ε.",
    "country": "GR",
    "city": "Θεσσαλονίκη",
    "website": "https://astyapp.example/",
    "size_band": "small",
    "sectors": ["ict", "mobility"],
    "sub_sectors": ["software", "public_transport"],
    "tags": ["MaaS", "έξυπνη πόλη"],
    "offers": [
        {
            "title": "Εφαρμογή δημόσιων συγκοινωνιών",
            "description": "Πληροφόρηση επιβατών σε πραγματικό χρόνο για δήμους.",
            "category": "public_transport_software",
            "language": "el",
        }
    ],
    "needs": [
        {
            "title": "Дистрибутор в Мексико",
            "description": "Търсим партньор за мексиканския пазар.",
            "kind": "distributor",
            "category": "public_transport_software",
            "language": "bg",
        }
    ],
    "target_markets": ["MX", "US-CA", "CO"],
    "obstacles": [{"kind": "certification"}, {"kind": "other", "detail": "Τοπικοί κανονισμοί δεδομένων"}],
    "connections": [{"market": "CY"}, {"organisation": "Δήμος Θεσσαλονίκης", "note": "πιλοτικό 2024"}],
    "working_languages": ["el", "en"],
    "contacts": [
        {
            "name": "Γιώργος Παπαδόπουλος",
            "email": "giorgos@astyapp.example",
            "phone": "+30 231 012 3456",
            "role": "CEO",
            "language": "el",
            "consent": "brochure",
        }
    ],
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clusters(stack: Stack) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """Two clusters with their first API keys."""
    made = {}
    async with as_operator(stack) as operator:
        for short_name, country in (("HAMAC", "GR"), ("ICTNet", "RS")):
            response = await operator.post("/clusters", json=cluster_body(short_name, country))
            assert response.status_code == 201, response.text
            made[short_name] = response.json()
    yield made


async def test_only_the_operator_registers_clusters(stack: Stack, clusters: dict[str, Any]) -> None:
    hamac_key = clusters["HAMAC"]["api_key"]["key"]
    async with (
        with_key(stack, None) as anonymous,
        with_key(stack, hamac_key) as hamac,
        as_operator(stack) as operator,
    ):
        missing = await anonymous.post("/clusters", json=cluster_body("X", "IT"))
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        async with with_key(stack, "not-a-token") as wrong:
            assert (await wrong.post("/clusters", json=cluster_body("X", "IT"))).status_code == 401
        assert (await hamac.post("/clusters", json=cluster_body("X", "IT"))).status_code == 403
        again = await operator.post("/clusters", json=cluster_body("HAMAC", "GR"))
        assert again.status_code == 200 and again.json()["api_key"] is None  # shown once only
        assert again.json()["id"] == clusters["HAMAC"]["id"]


async def test_a_key_acts_only_for_its_own_cluster(stack: Stack, clusters: dict[str, Any]) -> None:
    hamac, ictnet = clusters["HAMAC"], clusters["ICTNet"]
    async with (
        with_key(stack, hamac["api_key"]["key"]) as as_hamac,
        with_key(stack, ictnet["api_key"]["key"]) as as_ictnet,
    ):
        mine = await as_hamac.post("/companies", json={**FULL_PROFILE, "cluster_id": hamac["id"]})
        assert mine.status_code == 201, mine.text
        company_id = mine.json()["id"]
        theirs = {
            **FULL_PROFILE,
            "legal_name": "Tuđa firma d.o.o.",
            "country": "RS",
            "cluster_id": ictnet["id"],
        }
        assert (await as_hamac.post("/companies", json=theirs)).status_code == 403
        # Another cluster's member does not exist, as far as this key can tell.
        assert (await as_ictnet.get(f"/companies/{company_id}")).status_code == 404
        assert (
            await as_ictnet.patch(f"/companies/{company_id}", json={"city": "Beograd"})
        ).status_code == 404
        assert (await as_ictnet.delete(f"/companies/{company_id}")).status_code == 404
        assert (await as_ictnet.get(f"/companies/{company_id}/export")).status_code == 404
        assert (await as_ictnet.get("/companies", params={"cluster_id": hamac["id"]})).status_code == 403
        assert (await as_ictnet.get("/companies")).json()["total"] == 0
        assert (await as_hamac.get("/companies")).json()["total"] == 1
        assert (await as_ictnet.get(f"/clusters/{hamac['id']}/api-keys")).status_code == 403


async def test_keys_rotate_and_revoke(stack: Stack, clusters: dict[str, Any]) -> None:
    ictnet = clusters["ICTNet"]
    old = ictnet["api_key"]
    async with with_key(stack, old["key"]) as with_old:
        rotated = await with_old.post(f"/clusters/{ictnet['id']}/api-keys")
        assert rotated.status_code == 201
        new = rotated.json()
        assert new["key"] != old["key"] and new["key"].startswith("c2fk.")
        revoked = await with_old.delete(f"/clusters/{ictnet['id']}/api-keys/{old['id']}")
        assert revoked.status_code == 204
        after = await with_old.get("/companies")
        assert after.status_code == 401 and "revoked" in after.json()["detail"]
    async with with_key(stack, new["key"]) as with_new:
        assert (await with_new.get("/companies")).status_code == 200
        listed = (await with_new.get(f"/clusters/{ictnet['id']}/api-keys")).json()
        assert {k["id"]: k["revoked_at"] is not None for k in listed} == {old["id"]: True, new["id"]: False}
        assert all("key" not in k and "hash" not in k for k in listed)
    ictnet["api_key"] = new


async def test_a_profile_in_any_script_is_returned_exactly_and_versioned(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    async with as_operator(stack) as operator:
        listed = (await operator.get("/companies", params={"q": "εφαρμογές"})).json()
        assert listed["total"] == 1
        company = listed["items"][0]
        for field, value in FULL_PROFILE.items():
            assert without_nulls(company[field]) == value, field
        assert company["revision"] == 1
        company_id = company["id"]

        unchanged = await operator.patch(f"/companies/{company_id}", json={"city": "Θεσσαλονίκη"})
        assert unchanged.json()["revision"] == 1
        changed = await operator.patch(f"/companies/{company_id}", json={"city": "Αθήνα", "tags": ["MaaS"]})
        assert (changed.json()["revision"], changed.json()["city"], changed.json()["tags"]) == (
            2,
            "Αθήνα",
            ["MaaS"],
        )
        assert changed.json()["offers"] == FULL_PROFILE["offers"]

        replaced = await operator.put(
            f"/companies/{company_id}", json={**FULL_PROFILE, "size_band": "medium"}
        )
        assert (replaced.json()["revision"], replaced.json()["size_band"]) == (3, "medium")

        exported = (await operator.get(f"/companies/{company_id}/export")).json()
        assert without_nulls(exported["company"]["contacts"]) == FULL_PROFILE["contacts"]


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (
            {"sectors": ["ict"], "sub_sectors": ["waste"]},
            ["body", "sub_sectors"],
            "belongs to sector 'environmental_technologies'",
        ),
        (
            {"offers": [{"title": "x", "description": "y", "category": "teleportation", "language": "el"}]},
            ["body", "offers", 0, "category"],
            "Input should be",
        ),
        ({"target_markets": ["Mexico"]}, ["body", "target_markets", 0], "String should match pattern"),
        (
            {"contacts": [{"name": "A", "email": "nope", "language": "el"}]},
            ["body", "contacts", 0, "email"],
            "email",
        ),
        ({"obstacles": [{"kind": "other"}]}, ["body", "obstacles", 0], "needs a detail"),
        ({"legal_name": "x" * 201}, ["body", "legal_name"], "at most 200 characters"),
        ({"tags": ["a", "a"]}, ["body", "tags"], "unique"),
    ],
)
async def test_invalid_profiles_get_422_with_the_field_path(
    stack: Stack, clusters: dict[str, Any], change: dict[str, Any], path: list[Any], reason: str
) -> None:
    async with as_operator(stack) as operator:
        body = {
            **FULL_PROFILE,
            "legal_name": f"Invalid {uuid.uuid4().hex[:6]}",
            "cluster_id": clusters["HAMAC"]["id"],
        }
        response = await operator.post("/companies", json={**body, **change})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["loc"] == path and reason in p["msg"] for p in problems), problems


async def test_filters_and_paging(stack: Stack, clusters: dict[str, Any]) -> None:
    hamac = clusters["HAMAC"]["id"]
    async with as_operator(stack) as operator:
        for i, market in enumerate(["MX", "CO", "MX"]):
            body = {
                "cluster_id": hamac,
                "legal_name": f"Paging {i}",
                "country": "GR",
                "sectors": ["energy"],
                "target_markets": [market],
            }
            assert (await operator.post("/companies", json=body)).status_code == 201
        by_sector = (await operator.get("/companies", params={"sector": "energy", "limit": 2})).json()
        assert (by_sector["total"], len(by_sector["items"])) == (3, 2)
        rest = (await operator.get("/companies", params={"sector": "energy", "limit": 2, "offset": 2})).json()
        assert [c["legal_name"] for c in rest["items"]] == ["Paging 2"]
        mexico = (await operator.get("/companies", params={"sector": "energy", "target_market": "MX"})).json()
        assert [c["legal_name"] for c in mexico["items"]] == ["Paging 0", "Paging 2"]
        bad = await operator.get("/companies", params={"country": "Greece"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "country"]


async def test_erasure_reaches_every_service(stack: Stack, clusters: dict[str, Any]) -> None:
    hamac, ictnet = clusters["HAMAC"]["id"], clusters["ICTNet"]["id"]
    erased_email = "ana.erased@vazduh.example"
    async with as_operator(stack) as operator:
        seeker = {
            **FULL_PROFILE,
            "legal_name": "Vazduh Senzori d.o.o.",
            "country": "RS",
            "cluster_id": ictnet,
            "offers": [],
            "contacts": [
                {"name": "Ana Erased", "email": erased_email, "language": "sr", "consent": "brochure"}
            ],
            "needs": [{**FULL_PROFILE["needs"][0], "title": "Сензори за ваздух", "language": "sr"}],
        }
        seeker_id = (await operator.post("/companies", json=seeker)).json()["id"]
        provider = {**FULL_PROFILE, "legal_name": "Provider for erasure", "cluster_id": hamac, "needs": []}
        provider_id = (await operator.post("/companies", json=provider)).json()["id"]
        event_id = (
            await operator.post(
                "/events",
                json={
                    "name": "Erasure day",
                    "host_cluster_id": hamac,
                    "city": "Athens",
                    "country": "GR",
                    "venue_timezone": "Europe/Athens",
                    "starts_at": "2027-05-10T09:00:00+03:00",
                    "ends_at": "2027-05-10T17:00:00+03:00",
                },
            )
        ).json()["id"]
        for company_id, email in ((seeker_id, erased_email), (provider_id, "giorgos@astyapp.example")):
            signup = {"company_id": company_id, "attendee": {"name": "N", "email": email, "language": "el"}}
            assert (await operator.post(f"/events/{event_id}/participants", json=signup)).status_code == 201
        await eventually(lambda: any(erased_email in str(m["To"]) for m in read_mail(stack.config.maildir)))

        assert (await operator.delete(f"/companies/{seeker_id}")).status_code == 204
        assert (await operator.get(f"/companies/{seeker_id}")).status_code == 404
        assert (await operator.get(f"/events/{event_id}")).json()["registered"] == 1  # its place is freed

    client = Databases(stack.config)
    try:
        leftovers: list[str] = []

        async def nothing_left() -> bool:
            leftovers.clear()
            for service in ("registration", "matching", "notifications", "reporting"):
                db = client[f"c2f_{service}"]
                for name in await db.list_collection_names():
                    if name in ("erasures", "processed_events"):
                        continue  # ids and dates only
                    async for doc in db[name].find():
                        text = str(doc)
                        if "CompanyErased" in text:
                            continue  # the erasure's own announcement: ids only
                        if seeker_id in text or erased_email in text or "Vazduh" in text or "ваздух" in text:
                            leftovers.append(f"{service}.{name}: {text[:300]}")
            return not leftovers

        try:
            await eventually(nothing_left)
        except TimeoutError:
            pytest.fail("still there after erasure:\n" + "\n".join(leftovers))
        tombstone = await client["c2f_registration"]["erasures"].find_one({"_id": seeker_id})
        assert tombstone is not None and set(tombstone) == {"_id", "cluster_id", "erased_at"}
    finally:
        await client.close()
    async with as_operator(stack, "matching") as matching:
        assert (await matching.get(f"/events/{event_id}/suggestions")).json() == []


def meeting_event(host: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": f"B2B {uuid.uuid4().hex[:6]}",
        "kind": "b2b",
        "host_cluster_id": host,
        "venue": "Megaron",
        "city": "Athens",
        "country": "GR",
        "venue_timezone": "Europe/Athens",
        "starts_at": "2027-05-10T09:00:00+03:00",
        "ends_at": "2027-05-11T18:00:00+03:00",
        "meetings": {
            "days": ["2027-05-10", "2027-05-11"],
            "day_start": "09:00",
            "day_end": "11:00",
            "slot_minutes": 30,
            "breaks": [{"start": "10:00", "end": "10:30"}],
            "tables": 4,
        },
        **changes,
    }


async def _company(operator: httpx.AsyncClient, cluster_id: str, name: str) -> str:
    body = {"cluster_id": cluster_id, "legal_name": name, "country": "GR", "sectors": ["ict"]}
    response = await operator.post("/companies", json=body)
    assert response.status_code in (200, 201), response.text
    company_id: str = response.json()["id"]
    return company_id


def signup(company_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "attendee": {"name": "Νίκος", "email": f"n{uuid.uuid4().hex[:6]}@example.org", "language": "el"},
        **changes,
    }


async def test_an_event_lists_its_slots_in_the_venue_time_zone(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    async with as_operator(stack) as operator:
        created = await operator.post("/events", json=meeting_event(clusters["HAMAC"]["id"]))
    assert created.status_code == 201, created.text
    slots = created.json()["slots"]
    # 09:00-11:00 in 30-minute slots, minus the 10:00-10:30 break, on two days.
    assert [s["id"] for s in slots] == [
        "2027-05-10T09:00",
        "2027-05-10T09:30",
        "2027-05-10T10:30",
        "2027-05-11T09:00",
        "2027-05-11T09:30",
        "2027-05-11T10:30",
    ]
    assert slots[0]["starts_at"] == "2027-05-10T09:00:00+03:00"
    assert created.json()["meetings"]["tables"] == 4


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"venue_timezone": "Europe/Atlantis"}, "unknown IANA time zone"),
        ({"ends_at": "2027-05-09T09:00:00+03:00"}, "ends_at must be after starts_at"),
        ({"starts_at": "2027-05-10T09:00:00"}, "needs a UTC offset"),
        ({"meetings": {"days": ["2027-06-01"], "day_start": "09:00", "day_end": "10:00"}}, "meeting days"),
        (
            {"meetings": {"days": ["2027-05-10"], "day_start": "12:00", "day_end": "10:00"}},
            "day_end must be after",
        ),
        ({"kind": "webinar"}, "a webinar has no meeting plan"),
    ],
)
async def test_invalid_events_get_422(
    stack: Stack, clusters: dict[str, Any], changes: dict[str, Any], reason: str
) -> None:
    async with as_operator(stack) as operator:
        response = await operator.post("/events", json=meeting_event(clusters["HAMAC"]["id"], **changes))
    assert response.status_code == 422
    assert any(reason in p["msg"] for p in response.json()["detail"]), response.json()


async def test_signing_up_checks_availability_duplicates_deadline_and_capacity(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    hamac = clusters["HAMAC"]["id"]
    async with as_operator(stack) as operator:
        event = (await operator.post("/events", json=meeting_event(hamac, capacity=2))).json()
        first, second, third = [
            await _company(operator, hamac, f"Signup {i} {event['id'][:6]}") for i in range(3)
        ]
        path = f"/events/{event['id']}/participants"

        wrong_slot = await operator.post(path, json=signup(first, availability=["2027-05-10T10:00"]))
        assert wrong_slot.status_code == 422 and wrong_slot.json()["detail"][0]["loc"] == [
            "body",
            "availability",
        ]

        ok = await operator.post(path, json=signup(first, availability=["2027-05-10T09:00"], max_meetings=3))
        assert ok.status_code == 201, ok.text
        token = ok.json()["access_token"]
        assert token.startswith(f"c2fp.{ok.json()['id']}.")

        duplicate = await operator.post(path, json=signup(first))
        assert duplicate.status_code == 409 and ok.json()["id"] in duplicate.json()["detail"]

        assert (await operator.post(path, json=signup(second))).status_code == 201
        full = await operator.post(path, json=signup(third))
        assert full.status_code == 409 and "full (2 places)" in full.json()["detail"]

        # Withdrawing frees a place.
        assert (await operator.delete(f"{path}/{ok.json()['id']}")).status_code == 204
        assert (await operator.post(path, json=signup(third))).status_code == 201
        assert (await operator.get(f"/events/{event['id']}")).json()["registered"] == 2

        closed = (
            await operator.post(
                "/events",
                json=meeting_event(
                    hamac,
                    registration_deadline="2020-01-01T00:00:00+00:00",
                    starts_at="2019-12-01T09:00:00+00:00",
                    ends_at="2020-01-02T00:00:00+00:00",
                    meetings=None,
                ),
            )
        ).json()
        late = await operator.post(f"/events/{closed['id']}/participants", json=signup(first))
        assert late.status_code == 409 and "registration closed" in late.json()["detail"]


async def test_c2c_events_take_delegations_through_their_own_cluster(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    hamac, ictnet = clusters["HAMAC"], clusters["ICTNet"]
    async with as_operator(stack) as operator:
        event = (await operator.post("/events", json=meeting_event(hamac["id"], kind="c2c"))).json()
    path = f"/events/{event['id']}/participants"
    delegation = {
        "delegation_of": ictnet["id"],
        "attendee": {"name": "Marko", "email": "marko@ictnet.example", "language": "sr"},
    }
    async with with_key(stack, hamac["api_key"]["key"]) as as_hamac:
        assert (await as_hamac.post(path, json=delegation)).status_code == 403
    async with with_key(stack, ictnet["api_key"]["key"]) as as_ictnet:
        registered = await as_ictnet.post(path, json=delegation)
        assert registered.status_code == 201, registered.text
        assert registered.json()["cluster_id"] == ictnet["id"]
        company_at_c2c = await as_ictnet.post(path, json=signup("whatever"))
        assert company_at_c2c.status_code == 422


async def test_webinars_keep_their_recordings_listed(stack: Stack, clusters: dict[str, Any]) -> None:
    webinar = {
        "name": "Webinar: certification for Colombia",
        "kind": "webinar",
        "mode": "virtual",
        "host_cluster_id": clusters["ICTNet"]["id"],
        "city": "Belgrade",
        "country": "RS",
        "venue_timezone": "Europe/Belgrade",
        "starts_at": "2025-06-01T10:00:00+02:00",
        "ends_at": "2025-06-01T11:00:00+02:00",
        "topic": "What INVIMA and ICONTEC certification asks of smart-city products.",
        "speakers": ["Ana Gómez"],
        "link": "https://webinars.example/colombia",
    }
    async with as_operator(stack) as operator:
        created = (await operator.post("/events", json=webinar)).json()
        patched = await operator.patch(
            f"/events/{created['id']}", json={"recording_url": "https://webinars.example/recordings/colombia"}
        )
        assert (patched.json()["revision"], patched.json()["recording_url"]) == (
            2,
            "https://webinars.example/recordings/colombia",
        )
    async with with_key(stack, clusters["HAMAC"]["api_key"]["key"]) as member_cluster:
        past = (await member_cluster.get("/events", params={"kind": "webinar", "when": "past"})).json()
    assert [(w["name"], w["recording_url"]) for w in past] == [
        ("Webinar: certification for Colombia", "https://webinars.example/recordings/colombia")
    ]


async def test_an_oversize_body_is_refused_with_413(stack: Stack, clusters: dict[str, Any]) -> None:
    huge = {**FULL_PROFILE, "cluster_id": clusters["HAMAC"]["id"], "tags": ["x" * 40] * 30_000}
    async with as_operator(stack) as operator:
        response = await operator.post("/companies", json=huge)
        assert response.status_code == 413
        assert "larger than 1048576 bytes" in response.json()["detail"]

        async def chunks() -> Any:
            for _ in range(40):
                yield b"[" + b" " * 65_536

        streamed = await operator.post(
            "/companies", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413


async def test_partners_join_by_a_signed_agreement(stack: Stack, clusters: dict[str, Any]) -> None:
    async with as_operator(stack) as operator:
        partner = await operator.post(
            "/clusters", json={**cluster_body("Adriatic", "HR"), "membership": "partner"}
        )
        assert partner.status_code == 201
        agreement = {
            "title": "C2Future partnership agreement — Adriatic smart mobility",
            "signed_on": "2026-09-30",
            "scope": "Joint B2B events and a shared entry to the Colombian market.",
            "cluster_ids": [clusters["HAMAC"]["id"], partner.json()["id"]],
        }
        signed = await operator.post("/agreements", json=agreement)
        assert signed.status_code == 201, signed.text
        assert (await operator.post("/agreements", json=agreement)).status_code == 200
        unknown_signatory = await operator.post(
            "/agreements",
            json={**agreement, "title": "Other", "cluster_ids": [partner.json()["id"], "nobody"]},
        )
        assert unknown_signatory.status_code == 422
        assert unknown_signatory.json()["detail"][0]["loc"] == ["body", "cluster_ids", 1]
        listed = (await operator.get("/agreements")).json()
        assert [a["title"] for a in listed] == [agreement["title"]]
    async with with_key(stack, clusters["HAMAC"]["api_key"]["key"]) as member:
        assert (await member.post("/agreements", json={**agreement, "title": "x"})).status_code == 403


async def test_concurrent_requests_neither_duplicate_nor_overbook(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    hamac = clusters["HAMAC"]["id"]
    body = {**FULL_PROFILE, "legal_name": "Concurrent Α.Ε.", "cluster_id": hamac}
    async with as_operator(stack) as operator:
        answers = await asyncio.gather(*(operator.post("/companies", json=body) for _ in range(12)))
        assert sorted(a.status_code for a in answers) == [200] * 11 + [201]
        assert len({a.json()["id"] for a in answers}) == 1

        event = (await operator.post("/events", json=meeting_event(hamac, capacity=4))).json()
        companies = [await _company(operator, hamac, f"Rush {i} {event['id'][:6]}") for i in range(10)]
        path = f"/events/{event['id']}/participants"
        signups = await asyncio.gather(*(operator.post(path, json=signup(c)) for c in companies))
        codes = sorted(s.status_code for s in signups)
        assert codes == [201] * 4 + [409] * 6, [s.text for s in signups if s.status_code not in (201, 409)]
        assert (await operator.get(f"/events/{event['id']}")).json()["registered"] == 4


async def test_a_rush_with_duplicates_seats_each_company_once_and_names_its_participant(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    """Sign-ups to one event arriving together are seated together (one transaction, the
    counter moved once for all); a company already in, or twice in the same rush, gets 409
    naming its participant, and every other company gets in, with its own token."""
    hamac = clusters["HAMAC"]["id"]
    async with as_operator(stack) as operator:
        event = (await operator.post("/events", json=meeting_event(hamac))).json()
        companies = [await _company(operator, hamac, f"Twice {i} {event['id'][:6]}") for i in range(8)]
        path = f"/events/{event['id']}/participants"
        early = await operator.post(path, json=signup(companies[0]))
        assert early.status_code == 201, early.text

        rush = [*companies, companies[1]]
        answers = await asyncio.gather(*(operator.post(path, json=signup(c)) for c in rush))

        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 7 + [409] * 2, [a.text for a in answers]
        seated = {a.json()["company_id"]: a.json()["id"] for a in answers if a.status_code == 201}
        assert sorted(seated) == sorted(companies[1:])
        assert all(
            a.json()["access_token"].startswith(f"c2fp.{a.json()['id']}.")
            for a in answers
            if a.status_code == 201
        )
        refused = [a.json()["detail"] for a in answers if a.status_code == 409]
        assert any(early.json()["id"] in detail for detail in refused)
        assert any(seated[companies[1]] in detail for detail in refused)
        assert (await operator.get(f"/events/{event['id']}")).json()["registered"] == 8
        listed = (await operator.get(path, params={"limit": 100})).json()
        assert sorted(p["id"] for p in listed) == sorted([early.json()["id"], *seated.values()])


async def test_a_rush_of_sign_ups_to_one_event_all_get_in_without_retrying(
    stack: Stack, clusters: dict[str, Any]
) -> None:
    """Sign-ups to one event share its counter; at once, they must queue, not fail with 503."""
    hamac = clusters["HAMAC"]["id"]
    async with as_operator(stack) as operator:
        event = (await operator.post("/events", json=meeting_event(hamac))).json()
        companies = [await _company(operator, hamac, f"Crowd {i} {event['id'][:6]}") for i in range(60)]
        path = f"/events/{event['id']}/participants"
        signups = await asyncio.gather(*(operator.post(path, json=signup(c)) for c in companies))
        refused = [s.text for s in signups if s.status_code != 201]
        assert refused == [], refused
        assert (await operator.get(f"/events/{event['id']}")).json()["registered"] == 60
        pages = [(await operator.get(path, params={"limit": 25, "offset": k})).json() for k in (0, 25, 50)]
        assert [len(page) for page in pages] == [25, 25, 10]
        assert sorted(p["company_id"] for page in pages for p in page) == sorted(companies)
