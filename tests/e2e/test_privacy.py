"""Privacy end to end, on the shared platform: contact data appears nowhere a third party can
read (registration's views for other clusters, matching's recommendations, search, meetings
and agendas, the mails and webhooks notifications sends to others, reporting's reports,
exports, dashboard and brochure, the topics matching and notifications publish, and each
service's own database) without the matching consent, and where docs/services.md says it does with
that consent; and erasure removes a company from every service's database, read directly.

Three companies in three clusters meet at one B2B event:

- P (cluster A): contacts with consent `brochure`, `matches` and `none`; its attendee agreed to
  share contact data (`consent_share_contact: true`).
- Q (cluster B): contacts with consent `none` and `matches`; its attendee did not agree.
- E (cluster C): a `brochure` contact and a `none` contact, an attendee who agreed, a meeting
  request with a message; it is erased at the end.

Every piece of contact data is a marker unique to the run, looked for as plain text."""

import asyncio
import io
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from bson import json_util
from openpyxl import load_workbook

from c2f_cli.databases import Databases
from c2f_cli.processes import free_port
from c2f_cli.stack import Stack
from c2f_shared import topics
from tests.support import eventually, read_mail, settled

pytestmark = [pytest.mark.e2e, pytest.mark.fills_platform, pytest.mark.asyncio(loop_scope="session")]

SERVICES = ("registration", "matching", "notifications", "reporting")
TZ = "Europe/Madrid"


# -- markers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """One piece of contact data, unique to the run. `consent` is the contact's consent
    (brochure, matches, none) or, for an attendee, `shared` or `private`."""

    value: str
    owner: str  # P, Q or E
    kind: str  # contact or attendee
    consent: str
    field: str  # name, email, phone, role

    def __str__(self) -> str:
        return f"{self.owner} {self.kind} ({self.consent}) {self.field} {self.value!r}"


def partner_may_see(marker: Marker) -> bool:
    """What a company matched with (or meeting) the owner may be shown: contacts that agreed
    to `brochure` or `matches` (schemas.ContactIn), an attendee who agreed to share."""
    if marker.kind == "contact":
        return marker.consent in ("brochure", "matches")
    return marker.consent == "shared"


def in_brochure(marker: Marker) -> bool:
    """What the public brochure may show: contacts that agreed to the brochure."""
    return marker.kind == "contact" and marker.consent == "brochure"


@dataclass
class Company:
    key: str  # P, Q, E
    cluster: str  # A, B, C
    country: str
    legal_name: str
    contacts: list[dict[str, Any]]
    attendee: dict[str, str]
    shares: bool
    body: dict[str, Any]
    id: str = ""
    participant: str = ""
    token: str = ""


@dataclass
class World:
    platform: Stack
    run: str
    clusters: dict[str, dict[str, str]]  # A/B/C -> {"id", "key", "name"}
    companies: dict[str, Company]
    markers: list[Marker]
    event: str = ""
    meetings: dict[str, str] = field(default_factory=dict)  # "PQ", "EQ", "PE" -> meeting id
    message: str = ""  # E's message in its meeting request
    hooks: "Receiver | None" = None

    def url(self, service: str) -> str:
        return self.platform.config.service_url(service)

    def operator(self, service: str = "registration") -> httpx.AsyncClient:
        return self.client(service, self.platform.config.operator_token())

    def client(self, service: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url(service), headers=headers, timeout=60)

    def as_participant(self, key: str) -> httpx.AsyncClient:
        return self.client("matching", self.companies[key].token)

    def of(self, *owners: str) -> list[Marker]:
        return [m for m in self.markers if m.owner in owners]

    def others_than(self, viewer: str) -> list[Marker]:
        """Markers a participant of `viewer` must not see: the other companies' data without
        the consent that would show it to a partner."""
        return [m for m in self.markers if m.owner != viewer and not partner_may_see(m)]

    def not_public(self) -> list[Marker]:
        return [m for m in self.markers if not in_brochure(m)]


def found(markers: Iterable[Marker], text: str) -> list[str]:
    """The markers present in `text` (whitespace is ignored: PDF text wraps lines)."""
    flat = re.sub(r"\s+", "", text)
    return [str(m) for m in markers if re.sub(r"\s+", "", m.value) in flat]


def contains(text: str, value: str) -> bool:
    return re.sub(r"\s+", "", value) in re.sub(r"\s+", "", text)


def assert_none(markers: Iterable[Marker], text: str, where: str) -> None:
    leaked = found(markers, text)
    assert not leaked, f"{where} shows contact data without consent: {leaked}"


def assert_all(markers: Iterable[Marker], text: str, where: str) -> None:
    markers = list(markers)
    assert markers, f"{where}: nothing to look for"
    missing = [str(m) for m in markers if not contains(text, m.value)]
    assert not missing, f"{where} should show, with consent: {missing}"


# -- reading what a reader gets -------------------------------------------------------------


def unfold(text: str) -> str:
    """iCalendar folds lines at 75 octets (CRLF and a space) and escapes commas."""
    return re.sub(r"\r?\n[ \t]", "", text).replace("\\,", ",").replace("\\;", ";")


def readable(mail: EmailMessage) -> str:
    """Everything a recipient can read in a mail: headers, every part decoded, calendar files."""
    parts = [f"{k}: {v}" for k, v in mail.items()]
    for part in mail.walk():
        if part.is_multipart():
            continue
        content = part.get_content()
        parts.append(content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content))
    return unfold("\n".join(parts))


def mails_to(world: World, key: str) -> list[EmailMessage]:
    address = world.companies[key].attendee["email"]
    return [m for m in read_mail(world.platform.config.maildir) if address in str(m["To"])]


def of_kind(mails: list[EmailMessage], kind: str) -> list[EmailMessage]:
    return [m for m in mails if m["X-C2F-Kind"] == kind]


def xlsx_text(content: bytes) -> str:
    book = load_workbook(io.BytesIO(content), read_only=True)
    cells = [str(c) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for c in row]
    return "\n".join(cells)


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF"), content[:100]
    done = subprocess.run(
        ["/usr/bin/pdftotext", "-enc", "UTF-8", "-", "-"], input=content, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8", "replace")


async def body_of(response: httpx.Response) -> str:
    """A response as text, whatever its format (JSON, HTML, CSV, XLSX, PDF, iCalendar)."""
    assert response.status_code == 200, (
        f"{response.request.url}: {response.status_code} {response.text[:300]}"
    )
    kind = response.headers.get("content-type", "")
    if "spreadsheetml" in kind:
        return await asyncio.to_thread(xlsx_text, response.content)
    if "pdf" in kind:
        return await asyncio.to_thread(pdf_text, response.content)
    return unfold(response.text)


async def read(world: World, service: str, path: str, *tokens: str) -> str:
    """GET `path` as the public if it is public, else with the first of `tokens` it accepts."""
    async with httpx.AsyncClient(base_url=world.url(service), timeout=120) as client:
        response = await client.get(path)
        for token in tokens:
            if response.status_code not in (401, 403):
                break
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    return await body_of(response)


# -- a cluster's own system, for webhooks ---------------------------------------------------


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every webhook body."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body.decode("utf-8", "replace"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# -- the scene ------------------------------------------------------------------------------


def make_companies(run: str) -> tuple[dict[str, Company], list[Marker]]:
    digits = f"{int(run, 16) % 10**8:08d}"
    markers: list[Marker] = []

    def contact(owner: str, n: int, consent: str, language: str, code: str) -> dict[str, Any]:
        values = {
            "name": f"{owner}{n}Name{run}",
            "email": f"{owner.lower()}{n}mail{run}@example.org",
            "phone": f"+{code}{digits}",
            "role": f"{owner}{n}Role{run}",
        }
        markers.extend(Marker(v, owner, "contact", consent, k) for k, v in values.items())
        return {**values, "language": language, "consent": consent}

    def attendee(owner: str, shares: bool, language: str) -> dict[str, str]:
        values = {"name": f"{owner}Attendee{run}", "email": f"{owner.lower()}attendee{run}@example.org"}
        consent = "shared" if shares else "private"
        markers.extend(Marker(v, owner, "attendee", consent, k) for k, v in values.items())
        return {**values, "language": language}

    def company(
        key: str,
        cluster: str,
        country: str,
        profile: dict[str, Any],
        markets: list[str],
        contacts: list[dict[str, Any]],
        person: dict[str, str],
        shares: bool,
    ) -> Company:
        legal_name = f"Company{key}{run} S.A."
        body = {
            "legal_name": legal_name,
            "country": country,
            "target_markets": markets,
            "contacts": contacts,
            **profile,
        }
        return Company(key, cluster, country, legal_name, contacts, person, shares, body)

    p_offer = {
        "title": "Estaciones de calidad del aire",
        "description": "Miden PM2.5, PM10 y NO2 en tiempo real para ayuntamientos.",
        "category": "air_quality_monitoring",
        "language": "es",
    }
    q_offer = {
        "title": "Интелигентно улично осветление",
        "description": "LED улично осветление с дистанционно управление за общини.",
        "category": "smart_lighting",
        "language": "bg",
    }
    e_offer = {
        "title": "Sensori IoT per la città",
        "description": "Nodi LoRaWAN per misure ambientali urbane, pronti per i comuni.",
        "category": "iot_sensors",
        "language": "it",
    }

    def need(offer: dict[str, Any], kind: str, title: str, description: str, language: str) -> dict[str, Any]:
        return {
            "title": title,
            "description": description,
            "kind": kind,
            "category": offer["category"],
            "language": language,
        }

    p_needs = [
        need(q_offer, "partner", "Alumbrado público inteligente", "Farolas LED telegestionadas.", "es"),
        need(e_offer, "supplier", "Sensores IoT urbanos", "Nodos LoRaWAN para medir la ciudad.", "es"),
    ]
    q_needs = [
        need(p_offer, "supplier", "Сензори за качество на въздуха", "Търсим станции за PM2.5 и NO2.", "bg"),
    ]
    e_needs = [
        need(q_offer, "partner", "Illuminazione pubblica intelligente", "Lampioni LED telegestiti.", "it"),
        need(p_offer, "supplier", "Stazioni per la qualità dell'aria", "Misure di PM2.5 e NO2.", "it"),
    ]
    companies = {
        "P": company(
            "P",
            "A",
            "ES",
            {"sectors": ["environmental_technologies", "ict"], "offers": [p_offer], "needs": p_needs},
            ["MX", "CO"],
            [
                contact("P", 1, "brochure", "es", "3491"),
                contact("P", 2, "matches", "es", "3492"),
                contact("P", 3, "none", "es", "3493"),
            ],
            attendee("P", True, "es"),
            True,
        ),
        "Q": company(
            "Q",
            "B",
            "BG",
            {"sectors": ["energy"], "offers": [q_offer], "needs": q_needs},
            ["MX"],
            [contact("Q", 1, "none", "bg", "3591"), contact("Q", 2, "matches", "bg", "3592")],
            attendee("Q", False, "bg"),
            False,
        ),
        "E": company(
            "E",
            "C",
            "IT",
            {"sectors": ["ict"], "offers": [e_offer], "needs": e_needs, "connections": [{"market": "CO"}]},
            ["MX", "US-CA"],
            [contact("E", 1, "brochure", "it", "3991"), contact("E", 2, "none", "it", "3992")],
            attendee("E", True, "it"),
            True,
        ),
    }
    return companies, markers


async def build(platform: Stack, hooks: Receiver, port: int) -> World:
    run = uuid.uuid4().hex[:8]
    companies, markers = make_companies(run)
    world = World(platform=platform, run=run, clusters={}, companies=companies, markers=markers)
    world.hooks = hooks
    async with world.operator() as operator, world.operator("notifications") as notifications:
        for name, country in (("A", "ES"), ("B", "BG"), ("C", "IT")):
            body: dict[str, Any] = {
                "name": f"Cluster{name} {run}",
                "short_name": f"Priv{name}{run}",
                "country": country,
                "sectors": ["ict"],
            }
            made = await operator.post("/clusters", json=body)
            assert made.status_code == 201, made.text
            answer = made.json()
            world.clusters[name] = {"id": answer["id"], "key": answer["api_key"]["key"], "name": body["name"]}
            hook = await notifications.put(
                f"/clusters/{answer['id']}/webhook", json={"url": f"http://127.0.0.1:{port}/c2f"}
            )
            assert hook.status_code == 200, hook.text
        day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()  # yesterday: outcomes
        event = {
            "name": f"Privacy brokerage {run}",
            "kind": "b2b",
            "host_cluster_id": world.clusters["A"]["id"],
            "venue": "Palacio de Congresos",
            "city": "Valencia",
            "country": "ES",
            "venue_timezone": TZ,
            "starts_at": f"{day}T08:00:00+01:00",
            "ends_at": f"{day}T13:00:00+01:00",
            "meetings": {
                "days": [day],
                "day_start": "09:00",
                "day_end": "12:00",
                "slot_minutes": 30,
                "breaks": [{"start": "10:30", "end": "11:00"}],
                "tables": 2,
            },
        }
        made = await operator.post("/events", json=event)
        assert made.status_code == 201, made.text
        world.event = made.json()["id"]

    # Each cluster registers its own member and signs it up, with its own key. P and Q first,
    # and their first digests out (each lists the other), then E.
    for key in ("P", "Q"):
        await sign_up(world, key)
    for key in ("P", "Q"):
        await eventually(mail_of_kind(world, key, "suggestions_digest"), within=30)
    await sign_up(world, "E")
    return world


async def sign_up(world: World, key: str) -> None:
    company = world.companies[key]
    cluster = world.clusters[company.cluster]
    async with world.client("registration", cluster["key"]) as registration:
        made = await registration.post("/companies", json={**company.body, "cluster_id": cluster["id"]})
        assert made.status_code == 201, made.text
        company.id = made.json()["id"]
        signup = {
            "company_id": company.id,
            "attendee": company.attendee,
            "consent_share_contact": company.shares,
        }
        made = await registration.post(f"/events/{world.event}/participants", json=signup)
        assert made.status_code == 201, made.text
        company.participant, company.token = made.json()["id"], made.json()["access_token"]

    async def known() -> bool:  # matching knows the participant once its token opens its meetings
        async with world.as_participant(key) as matching:
            return (await matching.get(f"/participants/{company.participant}/meetings")).status_code == 200

    await eventually(known)


def mail_of_kind(world: World, key: str, kind: str) -> Callable[[], bool]:
    return lambda: bool(of_kind(mails_to(world, key), kind))


async def recommended(world: World, viewer: str, other: str) -> bool:
    me = world.companies[viewer].participant
    async with world.as_participant(viewer) as matching:
        recs = (await matching.get(f"/participants/{me}/recommendations")).json()
    return any(r["participant_id"] == world.companies[other].participant for r in recs)


async def ask(world: World, requester: str, invitee: str, message: str | None = None) -> str:
    me, other = world.companies[requester].participant, world.companies[invitee].participant
    async with world.as_participant(requester) as matching:
        made = await matching.post(f"/participants/{me}/meetings", json={"with": [other], "message": message})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def accept(world: World, who: str, meeting: str) -> None:
    async with world.as_participant(who) as matching:
        answered = await matching.post(f"/meetings/{meeting}/accept")
    assert answered.status_code == 200, answered.text


async def outcome(world: World, who: str, meeting: str, follow_up: str) -> None:
    body = {"held": True, "rating": 5, "follow_up": follow_up}
    async with world.as_participant(who) as matching:
        recorded = await matching.put(f"/meetings/{meeting}/outcome", json=body)
    assert recorded.status_code == 200, recorded.text


async def wait_settled(world: World, within: float = 40) -> None:
    await eventually(lambda: settled(world.platform.config), within=within)


@dataclass
class Snapshot:
    """What third parties could read before the erasure, gathered once."""

    recommendations: dict[str, str] = field(default_factory=dict)
    search: dict[str, str] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(platform: Stack) -> AsyncIterator[World]:
    hooks, port = Receiver(), free_port()
    server = uvicorn.Server(uvicorn.Config(hooks, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    built: World | None = None
    try:
        await eventually(lambda: server.started, within=10)
        built = await build(platform, hooks, port)
        yield built
    finally:
        if built is not None:
            async with built.operator("notifications") as notifications:
                for cluster in built.clusters.values():
                    await notifications.delete(f"/clusters/{cluster['id']}/webhook")
        server.should_exit = True
        await serving


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def met(world: World) -> Snapshot:
    """Suggestions (and their digests), requests, answers, a schedule and outcomes."""
    snap = Snapshot()
    for viewer, other in (("Q", "P"), ("P", "Q"), ("E", "P"), ("P", "E"), ("E", "Q")):
        await eventually(partial(recommended, world, viewer, other))
    # Recommendations leave out those already asked: read them before anyone asks.
    for key in ("P", "Q", "E"):
        me = world.companies[key].participant
        async with world.as_participant(key) as matching:
            snap.recommendations[key] = await body_of(
                await matching.get(f"/participants/{me}/recommendations")
            )
            found_by = await matching.get(
                "/search", params={"q": "calidad del aire, luces LED, sensores IoT"}
            )
            snap.search[key] = await body_of(found_by)
    world.message = f"Message{world.run}E"
    world.meetings["PQ"] = await ask(world, "P", "Q")
    world.meetings["EQ"] = await ask(world, "E", "Q", world.message)
    world.meetings["PE"] = await ask(world, "P", "E")
    await accept(world, "Q", world.meetings["PQ"])
    await accept(world, "Q", world.meetings["EQ"])
    await accept(world, "E", world.meetings["PE"])
    async with world.operator("matching") as matching:
        published = await matching.post(f"/events/{world.event}/schedule", json={"seconds": 1})
        assert published.status_code == 200, published.text
        assert published.json()["scheduled"] == 3, published.text
    await outcome(world, "P", world.meetings["PE"], "agreement_signed")
    await outcome(world, "E", world.meetings["EQ"], "further_contact")
    await outcome(world, "Q", world.meetings["PQ"], "offer_sent")
    for key in ("P", "Q", "E"):
        for kind in ("suggestions_digest", "schedule_published", "outcome_request"):
            await eventually(mail_of_kind(world, key, kind), within=30)
    await wait_settled(world)
    return snap


# -- consent: what third parties can read -----------------------------------------------------


async def test_registration_shows_contacts_only_to_their_own_cluster(world: World, met: Snapshot) -> None:
    for key, company in world.companies.items():
        own = world.clusters[company.cluster]
        async with world.client("registration", own["key"]) as mine:
            # The company's own cluster holds all of it (the markers are real).
            profile = await body_of(await mine.get(f"/companies/{company.id}"))
            assert_all([m for m in world.of(key) if m.kind == "contact"], profile, f"{key}'s own profile")
            export = await body_of(await mine.get(f"/companies/{company.id}/export"))
            assert_all(world.of(key), export, f"{key}'s own export")
        for name, cluster in world.clusters.items():
            if name == company.cluster:
                continue
            async with world.client("registration", cluster["key"]) as other:
                where = f"registration as cluster {name}, about {key}"
                assert (await other.get(f"/companies/{company.id}")).status_code == 404, where
                assert (await other.get(f"/companies/{company.id}/export")).status_code == 404, where
                searched = (await other.get("/companies", params={"q": company.legal_name})).json()
                assert searched["total"] == 0, where
                pages = [
                    await other.get("/companies", params={"limit": 200}),
                    await other.get(f"/events/{world.event}/participants"),
                    await other.get(f"/events/{world.event}"),
                    await other.get("/events"),
                    await other.get("/clusters"),
                    await other.get(f"/clusters/{world.clusters[company.cluster]['id']}"),
                ]
                for page in pages:
                    assert_none(world.of(key), await body_of(page), f"{where}: {page.request.url.path}")
    async with world.client("registration") as anonymous:
        assert (await anonymous.get("/companies")).status_code == 401
    # The host sees every participant of its event, by id only.
    async with world.client("registration", world.clusters["A"]["key"]) as host:
        listed = await body_of(await host.get(f"/events/{world.event}/participants"))
    assert world.companies["Q"].participant in listed
    assert_none(world.markers, listed, "the host's list of participants")


async def test_matching_shows_an_attendee_only_with_consent(world: World, met: Snapshot) -> None:
    for key in ("P", "Q", "E"):
        # Recommendations and search: company profiles, never a contact (search reaches every
        # participant of the partnership, not only partners).
        assert_none(world.others_than(key), met.recommendations[key], f"{key}'s recommendations")
        assert_none(world.not_public(), met.search[key], f"search as {key}")
    assert world.companies["P"].legal_name in met.recommendations["Q"]
    assert world.companies["P"].legal_name in met.search["Q"]
    p_attendee = [m for m in world.of("P") if m.kind == "attendee" and m.field == "name"]
    e_attendee = [m for m in world.of("E") if m.kind == "attendee" and m.field == "name"]
    for key, partners_who_share in (("Q", p_attendee + e_attendee), ("P", e_attendee), ("E", p_attendee)):
        me = world.companies[key].participant
        async with world.as_participant(key) as matching:
            views = {
                path: await body_of(await matching.get(path))
                for path in (
                    f"/participants/{me}/meetings",
                    f"/meetings/{world.meetings['PQ' if key != 'E' else 'PE']}",
                    f"/participants/{me}/agenda",
                    f"/participants/{me}/agenda.ics",
                    f"/participants/{me}/agenda.html",
                )
            }
        for path, text in views.items():
            assert_none(world.others_than(key), text, f"matching {path} as {key}")
        # With consent, the attendee's name is shown to the people it meets (docs/services.md, Agendas).
        for path in list(views)[2:] + list(views)[:1]:
            assert_all(partners_who_share, views[path], f"matching {path} as {key}")
    # The suggestions published (public, or for the participant and the organisers): company
    # names and reasons, never a contact.
    operator = world.platform.config.operator_token()
    reads = [(f"/events/{world.event}/suggestions", operator)] + [
        (f"/participants/{c.participant}/suggestions", c.token) for c in world.companies.values()
    ]
    for path, token in reads:
        text = await read(world, "matching", path, token)
        assert_none(world.markers, text, f"matching {path}")
        assert world.companies["P"].legal_name in text, path
    # The organisers' views: matching keeps no contact person, no e-mail, no private name.
    async with world.operator("matching") as matching:
        for path in (
            f"/events/{world.event}/pairs",
            f"/events/{world.event}/meetings",
            f"/events/{world.event}/schedule",
        ):
            text = await body_of(await matching.get(path))
            kept = [
                m
                for m in world.markers
                if m.kind == "contact" or m.field == "email" or not partner_may_see(m)
            ]
            assert_none(kept, text, f"matching {path} as the operator")


async def test_mails_and_webhooks_carry_contact_data_only_with_consent(world: World, met: Snapshot) -> None:
    for key in ("P", "Q", "E"):
        mails = mails_to(world, key)
        kinds = {m["X-C2F-Kind"] for m in mails}
        assert {"registration_confirmed", "suggestions_digest", "schedule_published"} <= kinds, kinds
        for mail in mails:
            assert_none(world.others_than(key), readable(mail), f"mail {mail['X-C2F-Kind']} to {key}")
        me = world.companies[key].participant
        async with world.client("notifications", world.companies[key].token) as notifications:
            inbox = await body_of(await notifications.get(f"/participants/{me}/inbox"))
        assert_none(world.others_than(key), inbox, f"{key}'s inbox")
    # With consent, P's attendee reaches Q: name and address in the digest, name in the request.
    to_q = mails_to(world, "Q")
    p_attendee = [m for m in world.of("P") if m.kind == "attendee"]
    [digest] = [
        m for m in of_kind(to_q, "suggestions_digest") if world.companies["P"].legal_name in readable(m)
    ]
    assert_all(p_attendee, readable(digest), "the digest to Q (P shares its contact)")
    [request] = [
        m for m in of_kind(to_q, "meeting_request") if world.companies["P"].legal_name in m["Subject"]
    ]
    text = readable(request)
    assert_all([m for m in p_attendee if m.field == "name"], text, "P's meeting request to Q")

    # Company contacts who agreed to `brochure` or `matches` reach the companies matched with
    # theirs: in the digest, and when a meeting is accepted. (Only names and addresses.)
    def reachable(owner: str) -> list[Marker]:
        return [
            m
            for m in world.of(owner)
            if m.kind == "contact" and partner_may_see(m) and m.field in ("name", "email")
        ]

    assert_all(reachable("P"), readable(digest), "the digest to Q (P's contacts agreed)")
    to_p = mails_to(world, "P")
    q_name = world.companies["Q"].legal_name
    digests = [readable(m) for m in of_kind(to_p, "suggestions_digest") if q_name in readable(m)]
    assert digests, "no digest to P lists Q"
    assert_all(reachable("Q"), "\n".join(digests), "the digest to P (Q's `matches` contact agreed)")
    [accepted] = [m for m in of_kind(to_p, "meeting_accepted") if q_name in m["Subject"]]
    assert_all(reachable("Q"), readable(accepted), "Q's acceptance to P")
    # The page behind the request's accept link shows no more than the mail.
    accept_link = next(u for u in re.findall(r'href="([^"]+)"', text) if "/act/" in u)
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await body_of(await browser.get(accept_link))
    assert world.companies["P"].legal_name in page
    assert_none(world.others_than("Q"), page, "the accept page Q opens")
    # Webhooks: ids and what happened, no contact data at all (docs/services.md, Webhooks).
    assert world.hooks is not None
    bodies = "\n".join(world.hooks.bodies)
    for company in world.companies.values():
        assert company.participant in bodies, f"no webhook call about {company.key}"
    assert_none(world.markers, bodies, "webhook calls")


async def test_reports_exports_and_dashboard_show_no_contact_and_the_brochure_only_with_consent(
    world: World, met: Snapshot
) -> None:
    cluster = {k: world.clusters[k]["id"] for k in world.clusters}
    paths = [
        "/reports/partnership",
        "/reports/partnership.csv",
        "/reports/partnership.xlsx",
        *(
            f"/reports/partnership/by/{by}{ext}"
            for by in ("cluster", "country", "sector", "event", "month")
            for ext in ("", ".csv", ".xlsx")
        ),
        f"/reports/events/{world.event}",
        f"/reports/events/{world.event}.csv",
        f"/reports/events/{world.event}.xlsx",
        "/reports/internationalisation",
        "/reports/internationalisation?market=CO",
        "/reports/internationalisation.csv",
        "/reports/internationalisation.xlsx",
        "/dashboard",
        f"/dashboard?event={world.event}&cluster={cluster['A']}",
    ]
    op = world.platform.config.operator_token()
    for path in paths:
        assert_none(world.markers, await read(world, "reporting", path, op), f"reporting {path}")
    connected = await read(world, "reporting", "/reports/internationalisation?market=CO", op)
    assert world.companies["E"].legal_name in connected  # (the reports do hold the companies)
    brochures = {"/brochure.html": await read(world, "reporting", "/brochure.html", op)}
    for name in ("A", "B", "C"):
        for fmt in ("html", "pdf"):
            path = f"/brochure.{fmt}?cluster={cluster[name]}"
            brochures[path] = await read(world, "reporting", path, op)
    for path, text in brochures.items():
        assert_none(world.not_public(), text, f"reporting {path}")
    for name, key in (("A", "P"), ("C", "E")):
        for fmt in ("html", "pdf"):
            text = brochures[f"/brochure.{fmt}?cluster={cluster[name]}"]
            assert contains(text, world.companies[key].legal_name)
            # A contact that agreed to the brochure is in it: name, role, e-mail and phone.
            assert_all([m for m in world.of(key) if in_brochure(m)], text, f"the {fmt} brochure of {key}")
    assert contains(brochures[f"/brochure.pdf?cluster={cluster['B']}"], world.companies["Q"].legal_name)
    assert_all([m for m in world.markers if in_brochure(m)], brochures["/brochure.html"], "/brochure.html")


async def read_topic(bootstrap: str, topic: str) -> list[str]:
    """Every record on `topic` from the beginning to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[str] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            records += [r.value.decode("utf-8", "replace") for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


async def test_the_topics_of_matching_and_notifications_carry_no_contact_data(
    world: World, met: Snapshot
) -> None:
    """Only CompanyRegistered/Updated and ParticipantRegistered carry personal data (docs/architecture.md)."""
    bootstrap = world.platform.config.kafka_bootstrap
    meeting_facts = "\n".join(await read_topic(bootstrap, topics.MEETINGS))
    assert world.meetings["EQ"] in meeting_facts
    assert_none(world.markers, meeting_facts, topics.MEETINGS)
    for topic in (topics.MATCH_SUGGESTIONS, topics.NOTIFICATIONS_SENT, topics.DEAD_LETTERS):
        assert_none(world.markers, "\n".join(await read_topic(bootstrap, topic)), topic)
    attendees = "\n".join(await read_topic(bootstrap, topics.PARTICIPANTS))
    assert_all([m for m in world.markers if m.kind == "attendee"], attendees, topics.PARTICIPANTS)


# -- what each service keeps --------------------------------------------------------------------


async def database_text(platform: Stack, service: str) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """Every document of the service's database, with its text (vectors left out)."""
    client = Databases(platform.config)
    try:
        db = client[f"c2f_{service}"]
        out: dict[str, list[tuple[dict[str, Any], str]]] = {}
        for name in await db.list_collection_names():
            docs = await db[name].find({}, {"vector": 0, "vectors": 0}).to_list(None)
            out[name] = [(d, json_util.dumps(d, ensure_ascii=False)) for d in docs]
        return out
    finally:
        await client.close()


async def test_each_service_keeps_only_the_contact_data_it_needs(world: World, met: Snapshot) -> None:
    """docs/architecture.md, "Personal data on the topics": matching keeps no contacts, reporting only those
    that consented to the brochure, notifications the recipients' own name, address, language,
    and the names and addresses of the contacts who agreed to be shown to matched companies."""
    contacts = [m for m in world.markers if m.kind == "contact"]
    attendees = [m for m in world.markers if m.kind == "attendee"]
    keeps = {
        "matching": contacts + [m for m in attendees if m.field == "email" or m.consent == "private"],
        "reporting": [m for m in world.markers if not in_brochure(m)],
        "notifications": [m for m in contacts if not partner_may_see(m) or m.field not in ("name", "email")],
    }
    for service, forbidden in keeps.items():
        for collection, docs in (await database_text(world.platform, service)).items():
            for _, text in docs:
                assert_none(forbidden, text, f"c2f_{service}.{collection}")
    reporting = await database_text(world.platform, "reporting")
    brochure_ready = "\n".join(text for _, text in reporting["companies"])
    assert_all([m for m in world.markers if in_brochure(m)], brochure_ready, "c2f_reporting.companies")


# -- erasure --------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def erased(world: World, met: Snapshot) -> dict[str, dict[str, list[tuple[dict[str, Any], str]]]]:
    """E erased by its own cluster; then every service's database, once everything settled."""
    e = world.companies["E"]
    async with world.client("registration", world.clusters["C"]["key"]) as registration:
        assert (await registration.delete(f"/companies/{e.id}")).status_code == 204
        assert (await registration.get(f"/companies/{e.id}")).status_code == 404
    async with world.operator() as operator:
        assert (await operator.get(f"/events/{world.event}")).json()["registered"] == 2
    # The other parties hear that their meetings with E are cancelled (docs/services.md, Meetings).
    for key in ("P", "Q"):
        await eventually(mail_of_kind(world, key, "meeting_cancelled"), within=30)
    await wait_settled(world)
    return {service: await database_text(world.platform, service) for service in SERVICES}


def erased_personal_data(world: World) -> list[str]:
    """What identifies E or its people: the company's id and name, its contacts, its attendee,
    and what its attendee wrote."""
    e = world.companies["E"]
    return [e.id, e.legal_name, world.message, *(m.value for m in world.of("E"))]


# What may stay after an erasure: that it happened, with ids and a date (and, in notifications,
# the ids of its participants, so that facts in flight about them are recognised).
TOMBSTONES: dict[tuple[str, str], set[str]] = {
    ("registration", "erasures"): {"_id", "cluster_id", "erased_at"},
    ("notifications", "erasures"): {"_id", "erased_at", "participants"},
    ("reporting", "erasures"): {"_id", "erased_at"},
    ("matching", "erasures"): {"_id", "erased_at"},
}


def is_tombstone(world: World, service: str, collection: str, doc: dict[str, Any]) -> bool:
    e = world.companies["E"]
    shape = TOMBSTONES.get((service, collection))
    if shape is not None and doc.get("_id") == e.id:
        assert set(doc) == shape, f"c2f_{service}.{collection} tombstone holds more: {doc}"
        if "participants" in doc:
            assert doc["participants"] == [e.participant], doc
        if "cluster_id" in doc:
            assert doc["cluster_id"] == world.clusters["C"]["id"], doc
        return True
    if (service, collection) == ("registration", "outbox") and doc.get("type") == "CompanyErased":
        # The announcement itself must name the company; it carries ids only.
        data = json.loads(doc["payload"])["data"]
        assert data == {"company_id": e.id, "cluster_id": world.clusters["C"]["id"]}, data
        return True
    return False


def leftovers(
    world: World, service: str, dump: dict[str, list[tuple[dict[str, Any], str]]], needles: list[str]
) -> list[str]:
    left = []
    for collection, docs in dump.items():
        for doc, text in docs:
            hits = [n for n in needles if n in text]
            if hits and not is_tombstone(world, service, collection, doc):
                left.append(f"c2f_{service}.{collection} {doc.get('_id')}: {hits} in {text[:400]}")
    return left


@pytest.mark.parametrize("service", SERVICES)
async def test_erasure_leaves_no_personal_data(
    world: World, erased: dict[str, dict[str, list[tuple[dict[str, Any], str]]]], service: str
) -> None:
    left = leftovers(world, service, erased[service], erased_personal_data(world))
    assert not left, "still there after erasure:\n" + "\n".join(left)


@pytest.mark.parametrize("service", SERVICES)
async def test_erasure_leaves_no_participant_id_but_the_tombstone(
    world: World, erased: dict[str, dict[str, list[tuple[dict[str, Any], str]]]], service: str
) -> None:
    left = leftovers(world, service, erased[service], [world.companies["E"].participant])
    assert not left, "still there after erasure:\n" + "\n".join(left)


async def test_tombstones_hold_ids_and_dates_only(
    world: World, erased: dict[str, dict[str, list[tuple[dict[str, Any], str]]]]
) -> None:
    e = world.companies["E"]
    for (service, collection), shape in TOMBSTONES.items():
        [doc] = [d for d, _ in erased[service].get(collection, []) if d["_id"] == e.id]
        assert set(doc) == shape, doc
    [announced] = [
        d
        for d, _ in erased["registration"]["outbox"]
        if d.get("type") == "CompanyErased" and d["key"] == e.id
    ]
    assert json.loads(announced["payload"])["data"] == {
        "company_id": e.id,
        "cluster_id": world.clusters["C"]["id"],
    }


async def test_an_erased_company_is_gone_from_brochure_search_and_reports(
    world: World, erased: dict[str, dict[str, list[tuple[dict[str, Any], str]]]]
) -> None:
    e = world.companies["E"]
    gone = [e.id, e.legal_name, e.participant, *(m.value for m in world.of("E"))]
    cluster_c = world.clusters["C"]["id"]
    op = world.platform.config.operator_token()
    for path in (
        "/brochure.html",
        f"/brochure.html?cluster={cluster_c}",
        f"/brochure.pdf?cluster={cluster_c}",
        "/reports/internationalisation?market=CO",
        "/reports/partnership/by/cluster",
        "/dashboard",
    ):
        text = await read(world, "reporting", path, op)
        assert not [g for g in gone if contains(text, g)], f"{path} still shows E"
    rows = json.loads(await read(world, "reporting", "/reports/partnership/by/cluster", op))
    [row_c] = [r for r in rows if r["group"] == cluster_c] or [{"companies": 0, "participants": 0}]
    assert (row_c["companies"], row_c["participants"]) == (0, 0), row_c
    async with world.as_participant("P") as matching:
        me = world.companies["P"].participant
        for path in (
            f"/participants/{me}/recommendations",
            f"/participants/{me}/meetings",
            f"/participants/{me}/agenda",
        ):
            text = await body_of(await matching.get(path))
            assert not [g for g in gone if g in text], f"matching {path} still shows E"
        hits = await body_of(await matching.get("/search", params={"q": "Sensori IoT per la città"}))
        assert e.id not in hits and e.legal_name not in hits
    text = await read(world, "matching", f"/events/{world.event}/suggestions", op)
    assert not [g for g in gone if g in text], "the event's suggestions still show E"
    async with world.operator() as operator:
        assert (await operator.get(f"/companies/{e.id}")).status_code == 404
        listed = await body_of(await operator.get("/companies", params={"q": e.legal_name}))
        assert e.id not in listed


async def test_an_erased_companys_meetings_leave_the_reports(
    world: World, erased: dict[str, dict[str, list[tuple[dict[str, Any], str]]]]
) -> None:
    """Reporting forgets the company "with its participants and matches": the event's report
    counts P and Q's meeting only."""
    op = world.platform.config.operator_token()
    report = json.loads(await read(world, "reporting", f"/reports/events/{world.event}", op))
    figures = {k: report[k] for k in ("registrations", "meeting_requests", "accepted", "scheduled")}
    assert figures == {"registrations": 2, "meeting_requests": 1, "accepted": 1, "scheduled": 1}, figures
