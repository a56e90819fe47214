"""The whole flow through real processes: registration → matching → notifications → reporting.

The four services run under uvicorn on the embedded broker and database (or the
containers, see tests/infra.py); the test drives them over HTTP and reads what
arrived at the SMTP sink. Tests run in file order and share one scenario.
"""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from c2f_cli.stack import Stack
from c2f_shared import topics
from tests.support import (
    as_operator,
    committed_offsets,
    eventually,
    first_on_topic,
    of_kind,
    read_mail,
    recipients,
    text_of,
)

pytestmark = [pytest.mark.e2e, pytest.mark.counts_platform, pytest.mark.asyncio(loop_scope="session")]

AIRDATA_EMAIL = "ivana.petrova@airdata.example"
SENSORES_EMAIL = "elena.ortiz@sensores.example"
PANELES_EMAIL = "jon.arrieta@paneles.example"


@dataclass
class Scenario:
    platform: Stack
    ids: dict[str, str]
    participant_bodies: dict[str, dict[str, Any]]

    def url(self, service: str) -> str:
        return self.platform.config.service_url(service)


def _cluster(short_name: str, country: str) -> dict[str, Any]:
    return {"name": f"{short_name} cluster", "short_name": short_name, "country": country, "sectors": ["ict"]}


def _company(cluster_id: str, name: str, country: str, offers: list[Any], needs: list[Any]) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "legal_name": name,
        "country": country,
        "city": "Sofia" if country == "BG" else "Bilbao",
        "sectors": ["ict", "environmental_technologies"],
        "offers": offers,
        "needs": needs,
        "target_markets": ["MX", "US-CA"],
    }


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    item_id: str = response.json()["id"]
    return item_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scenario(platform: Stack) -> AsyncIterator[Scenario]:
    """Two clusters, three companies, one event; two of them should meet."""
    ids: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    async with as_operator(platform) as client:
        ids["dti"] = await _post(client, "/clusters", _cluster("DTI", "BG"))
        ids["acclima"] = await _post(client, "/clusters", _cluster("Acclima", "ES"))
        ids["airdata"] = await _post(
            client,
            "/companies",
            _company(
                ids["dti"],
                "ЕърДата ООД",
                "BG",
                offers=[],
                needs=[
                    {
                        "title": "Сензори за качество на въздуха",
                        "description": "Търсим доставчик на сензори за нашата платформа.",
                        "kind": "supplier",
                        "category": "air_quality_monitoring",
                        "language": "bg",
                    }
                ],
            ),
        )
        ids["sensores"] = await _post(
            client,
            "/companies",
            _company(
                ids["acclima"],
                "Sensores Bizkaia S.L.",
                "ES",
                offers=[
                    {
                        "title": "Sensores de calidad del aire",
                        "description": "Estaciones IoT que miden partículas y NO2 en tiempo real.",
                        "category": "air_quality_monitoring",
                        "language": "es",
                    }
                ],
                needs=[],
            ),
        )
        ids["paneles"] = await _post(
            client,
            "/companies",
            _company(
                ids["acclima"],
                "Paneles Aislantes S.A.",
                "ES",
                offers=[
                    {
                        "title": "Paneles aislantes de fibra de madera",
                        "description": "Aislamiento térmico para rehabilitación de edificios.",
                        "category": "insulation_materials",
                        "language": "es",
                    }
                ],
                needs=[],
            ),
        )
        ids["event"] = await _post(
            client,
            "/events",
            {
                "name": "Smart City B2B Day — Sofia",
                "kind": "b2b",
                "host_cluster_id": ids["dti"],
                "city": "Sofia",
                "country": "BG",
                "venue_timezone": "Europe/Sofia",
                "starts_at": "2027-03-16T09:00:00+02:00",
                "ends_at": "2027-03-16T17:00:00+02:00",
            },
        )
        for key, name, email, language, consent in (
            ("airdata", "Ивана Петрова", AIRDATA_EMAIL, "bg", False),
            ("sensores", "Elena Ortiz", SENSORES_EMAIL, "es", True),
            ("paneles", "Jon Arrieta", PANELES_EMAIL, "es", True),
        ):
            body = {
                "company_id": ids[key],
                "attendee": {"name": name, "email": email, "language": language},
                "consent_share_contact": consent,
            }
            bodies[key] = body
            ids[f"p_{key}"] = await _post(client, f"/events/{ids['event']}/participants", body)
    yield Scenario(platform=platform, ids=ids, participant_bodies=bodies)


async def _report(scenario: Scenario) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{scenario.url('reporting')}/reports/partnership")
        response.raise_for_status()
        report: dict[str, int] = response.json()
        return report


MAILS = 3 + 2  # a confirmation to each of the three participants, a digest to each side of the match
EXPECTED_REPORT = {
    "clusters": 2,
    "agreements": 0,
    "companies": 3,
    "events": 1,
    "participants": 3,
    "match_suggestions": 1,
    "meeting_requests": 0,
    "meetings_accepted": 0,
    "meetings_scheduled": 0,
    "meetings_held": 0,
    "notifications_sent": MAILS,
    "dead_letters": 0,
}


async def test_both_sides_of_a_match_are_emailed(scenario: Scenario) -> None:
    maildir = scenario.platform.config.maildir
    await eventually(lambda: len(of_kind(read_mail(maildir), "suggestions_digest")) >= 2)
    mail = of_kind(read_mail(maildir), "suggestions_digest")
    assert recipients(mail) == sorted([AIRDATA_EMAIL, SENSORES_EMAIL])
    by_recipient = {m["To"].addresses[0].addr_spec: m for m in mail}
    to_airdata = by_recipient[AIRDATA_EMAIL]
    to_sensores = by_recipient[SENSORES_EMAIL]
    # Each in its reader's language: Ivana reads Bulgarian, Elena Spanish.
    assert (to_airdata["Content-Language"], to_sensores["Content-Language"]) == ("bg", "es")
    body = text_of(to_airdata)
    assert "Sensores Bizkaia S.L." in body
    assert "Sensores de calidad del aire" in body and "Сензори за качество на въздуха" in body
    # Sensores consented to share its contact; AirData did not.
    assert SENSORES_EMAIL in body
    sensores_body = text_of(to_sensores)
    assert "Sensores de calidad del aire" in sensores_body
    assert AIRDATA_EMAIL not in sensores_body
    # Everyone who signed up was told so, once.
    confirmed = of_kind(read_mail(maildir), "registration_confirmed")
    assert recipients(confirmed) == sorted([AIRDATA_EMAIL, SENSORES_EMAIL, PANELES_EMAIL])


async def test_the_report_counts_everything(scenario: Scenario) -> None:
    async def settled() -> bool:
        return await _report(scenario) == EXPECTED_REPORT

    await eventually(settled)


async def test_matching_lists_the_suggestion_with_its_reasons(scenario: Scenario) -> None:
    async with as_operator(scenario.platform, "matching") as client:
        response = await client.get(f"/participants/{scenario.ids['p_airdata']}/suggestions")
    [suggestion] = response.json()
    parties = {p["participant_id"] for p in suggestion["parties"]}
    assert parties == {scenario.ids["p_airdata"], scenario.ids["p_sensores"]}
    [reason] = suggestion["reasons"]
    assert (reason["offer_title"], reason["need_title"]) == (
        "Sensores de calidad del aire",
        "Сензори за качество на въздуха",
    )
    assert {"kind": "connects_countries", "countries": ["BG", "ES"]} in suggestion["signals"]


async def test_posting_the_same_registration_twice_creates_nothing(scenario: Scenario) -> None:
    event_id = scenario.ids["event"]
    async with as_operator(scenario.platform) as client:
        again = await client.post(
            f"/events/{event_id}/participants", json=scenario.participant_bodies["airdata"]
        )
        assert again.status_code == 409
        assert f"already registered for this event as participant {scenario.ids['p_airdata']}" in again.text
        stored = (await client.get(f"/companies/{scenario.ids['sensores']}")).json()
        for server_side in ("id", "revision", "created", "created_at", "updated_at"):
            stored.pop(server_side)
        company_again = await client.post("/companies", json=stored)
        assert (company_again.status_code, company_again.json()["id"]) == (200, scenario.ids["sensores"])
        changed = {**scenario.participant_bodies["airdata"], "consent_share_contact": True}
        conflict = await client.post(f"/events/{event_id}/participants", json=changed)
        assert conflict.status_code == 409
        listed = await client.get(f"/events/{event_id}/participants")
        assert len(listed.json()) == 3
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["outbox_pending"] == 0
    assert len(read_mail(scenario.platform.config.maildir)) == MAILS


async def test_redelivered_events_change_nothing_and_send_nothing(scenario: Scenario) -> None:
    bootstrap = scenario.platform.config.kafka_bootstrap
    redelivered = [topics.PARTICIPANTS, topics.MATCH_SUGGESTIONS, topics.COMPANIES, topics.EVENTS]
    consumer = AIOKafkaConsumer(*redelivered, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < 3 + 1 + 3 + 1:  # everything the scenario published on those topics
            batch = await consumer.getmany(timeout_ms=1000)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    last: dict[TopicPartition, int] = {}
    try:
        for record in records:
            meta = await producer.send_and_wait(record.topic, record.value, key=record.key)
            last[TopicPartition(meta.topic, meta.partition)] = meta.offset
    finally:
        await producer.stop()

    async def all_consumed() -> bool:
        for group, its_topics in (
            ("c2f-matching", {topics.PARTICIPANTS, topics.COMPANIES, topics.EVENTS}),
            ("c2f-notifications", {topics.PARTICIPANTS, topics.MATCH_SUGGESTIONS, topics.COMPANIES}),
            ("c2f-reporting", set(redelivered)),
        ):
            mine = [tp for tp in last if tp.topic in its_topics]
            done = await committed_offsets(bootstrap, group, mine)
            if any(done[tp] <= last[tp] for tp in mine):
                return False
        return True

    await eventually(all_consumed)
    assert len(read_mail(scenario.platform.config.maildir)) == MAILS
    assert await _report(scenario) == EXPECTED_REPORT


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        (
            "/clusters",
            {"name": "X", "short_name": "X", "country": "Bulgaria", "sectors": ["ict"]},
            "country",
            "pattern",
        ),
        (
            "/clusters",
            {"name": "X", "short_name": "X", "country": "BG", "sectors": ["space"]},
            "sectors",
            "ict",
        ),
        ("/clusters", {"short_name": "X", "country": "BG", "sectors": ["ict"]}, "name", "Field required"),
        (
            "/events",
            {
                "name": "E",
                "host_cluster_id": "x",
                "city": "Sofia",
                "country": "BG",
                "venue_timezone": "Europe/Atlantis",
                "starts_at": "2027-03-16T09:00:00+02:00",
                "ends_at": "2027-03-16T17:00:00+02:00",
            },
            "venue_timezone",
            "unknown IANA time zone",
        ),
    ],
)
async def test_a_malformed_request_gets_422_naming_the_field(
    scenario: Scenario, path: str, body: dict[str, Any], field: str, reason: str
) -> None:
    async with as_operator(scenario.platform) as client:
        response = await client.post(path, json=body)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["loc"][-1] == field or field in map(str, p["loc"]) for p in problems), problems
    assert any(reason in p["msg"] for p in problems), problems


async def test_an_unknown_reference_gets_422_and_stores_nothing(scenario: Scenario) -> None:
    async with as_operator(scenario.platform) as client:
        body = _company("no-such-cluster", "Ghost Ltd", "BG", offers=[], needs=[])
        response = await client.post("/companies", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "cluster_id"]
        assert "unknown cluster" in response.json()["detail"][0]["msg"]
        bad_email = {
            **scenario.participant_bodies["paneles"],
            "attendee": {"name": "A", "email": "not-an-email", "language": "es"},
        }
        response = await client.post(f"/events/{scenario.ids['event']}/participants", json=bad_email)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "attendee", "email"]
    assert (await _report(scenario))["companies"] == 3


async def test_a_poison_message_is_dead_lettered_and_consumers_go_on(scenario: Scenario) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=scenario.platform.config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.PARTICIPANTS, b'{"type": "ParticipantRegistered"}', key=b"x")
    finally:
        await producer.stop()
    # registration, matching, notifications and reporting each set it aside; reporting counts all four.
    await eventually(lambda: _dead_letters_are(scenario, 4))
    # The operator lists them, with the reason, and re-driving one that is still unreadable says so.
    listed = _c2f(scenario, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "invalid envelope" in line]
    assert {row.split()[1] for row in rows} >= {"registration", "matching", "notifications", "reporting"}
    letter_id = next(row.split()[3] for row in rows if row.split()[1] == "matching")
    redriven = _c2f(scenario, "dead-letters", "redrive", "matching", letter_id)
    assert redriven.returncode == 1 and "still unreadable: invalid envelope" in redriven.stdout
    assert _c2f(scenario, "dead-letters", "list", "--service", "matching").stdout.count(letter_id) == 1
    # ... and every consumer goes on: a withdrawal and a new sign-up still reach reporting.
    event_id = scenario.ids["event"]
    async with as_operator(scenario.platform) as client:
        withdrawn = await client.delete(f"/events/{event_id}/participants/{scenario.ids['p_paneles']}")
        assert withdrawn.status_code == 204
        await eventually(lambda: _participants_are(scenario, 2))
        body = {
            **scenario.participant_bodies["paneles"],
            "attendee": {"name": "Ane", "email": "ane@paneles.example", "language": "es"},
        }
        await _post(client, f"/events/{event_id}/participants", body)
    await eventually(lambda: _participants_are(scenario, 3))


def _c2f(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command line, pointed at the test's platform."""
    config = scenario.platform.config
    env = {f"C2F_{name.upper()}_PORT": str(port) for name, port in config.service_ports.items()}
    env |= {"C2F_HOME": str(config.home), "C2F_OPERATOR_TOKEN": config.operator_token(), "COLUMNS": "250"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("c2f")), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


async def _participants_are(scenario: Scenario, n: int) -> bool:
    return (await _report(scenario))["participants"] == n


async def _dead_letters_are(scenario: Scenario, n: int) -> bool:
    return (await _report(scenario))["dead_letters"] == n


@pytest.mark.parametrize("service", ["registration", "matching", "notifications", "reporting"])
async def test_each_service_documents_itself_and_reports_health(scenario: Scenario, service: str) -> None:
    async with httpx.AsyncClient(base_url=scenario.url(service)) as client:
        assert (await client.get("/healthz")).json() == {"status": "alive", "service": service}
        ready = (await client.get("/readyz")).json()
        assert ready["ready"] is True and ready["checks"]["database"] == "ok"
        assert (await client.get("/openapi.json")).json()["info"]["title"] == f"C2Future Match — {service}"
        assert (await client.get("/docs")).status_code == 200
        asyncapi = (await client.get("/asyncapi.json")).json()
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    expected = {
        "registration": {topics.CLUSTERS, topics.COMPANIES, topics.EVENTS, topics.PARTICIPANTS},
        "matching": {
            topics.CLUSTERS,
            topics.COMPANIES,
            topics.EVENTS,
            topics.PARTICIPANTS,
            topics.MATCH_SUGGESTIONS,
            topics.MEETINGS,
        },
        "notifications": {
            topics.CLUSTERS,
            topics.COMPANIES,
            topics.EVENTS,
            topics.PARTICIPANTS,
            topics.MATCH_SUGGESTIONS,
            topics.MEETINGS,
            topics.NOTIFICATIONS_SENT,
            topics.DEAD_LETTERS,
        },
        "reporting": set(topics.ALL),
    }[service]
    assert addresses == expected


async def test_the_callers_correlation_id_travels_with_the_event(scenario: Scenario) -> None:
    async with as_operator(scenario.platform) as client:
        response = await client.post(
            "/clusters", json=_cluster("HAMAC", "GR"), headers={"X-Correlation-ID": "trace-hamac-1"}
        )
    assert response.headers["X-Correlation-ID"] == "trace-hamac-1"
    cluster_id = response.json()["id"]
    record = await first_on_topic(
        scenario.platform.config.kafka_bootstrap,
        topics.CLUSTERS,
        lambda r: json.loads(r.value)["key"] == cluster_id,
    )
    found = {**json.loads(record.value), "kafka_key": record.key}
    assert found["correlation_id"] == "trace-hamac-1"
    assert (found["type"], found["producer"], found["schema_version"]) == (
        "ClusterRegistered",
        "registration",
        1,
    )
    assert found["kafka_key"] == cluster_id.encode()
