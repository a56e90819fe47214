"""Every endpoint of every service against every kind of caller: only the right one gets through.

The callers: nobody (no token), a made-up token, cluster A's API key, cluster B's API key,
participant P's access token, Q's (whom P asked for a meeting), R's (another participant of
the same event), and the operator. Each operation in each service's OpenAPI document has a row
in `routes()` saying who may call it; a new endpoint without a row fails the test, so none is
left unchecked.

"Gets through" means the answer is neither 401 nor 403 (it may still be 404 or 409 or 422,
which say something about the request, not about the caller). "Refused" means 401 or 403, or
"no such thing" (404, or 422 "unknown company") where another cluster's resource is hidden.
Refusals are checked with valid bodies, so that a 422 cannot stand in for a refusal.
Destructive operations run on resources made for them. Also: tokens and keys never reach the
logs, and refused credentials are rate-limited per address (on a process of its own, with a
low limit).
"""

import asyncio
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from c2f_cli.config import SERVICES
from c2f_cli.processes import free_port, spawn, wait_until_ready
from c2f_cli.stack import Stack
from tests.support import as_operator, b2b_event, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

CALLERS = ("nobody", "made_up", "key_a", "key_b", "token_p", "token_q", "token_r", "operator")
REFUSED = {401, 403}

# Who may call: a set of callers, by kind of endpoint.
PUBLIC = set(CALLERS)
OPERATOR = {"operator"}
MEMBER = {"key_a", "key_b", "operator"}  # any cluster of the partnership
CLUSTER_A = {"key_a", "operator"}  # cluster A's own data
PARTICIPANT_P = {"token_p", "operator"}  # participant P's own data
PARTIES = {"token_p", "token_q", "operator"}  # the meeting's parties (P asked Q)
PARTICIPANTS = {"token_p", "token_q", "token_r", "operator"}  # any participant, or the operator
NOBODY: set[str] = set()  # signed links: a forged one opens for no one, whatever the header


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str  # the OpenAPI template
    allowed: set[str]
    body: Any = None  # a valid body, so that a refusal cannot hide behind a 422
    hidden: bool = False  # another cluster may get 404 instead of 403 (existence not revealed)
    try_allowed: bool = True  # False: too heavy to run for the allowed callers (a rebuild)


def routes(w: "World") -> list[Route]:
    a = w.cluster_a
    company = {
        "cluster_id": a,
        "legal_name": f"Intruder-proof {w.run}",
        "country": "BG",
        "sectors": ["ict"],
    }
    fields = {k: v for k, v in company.items() if k != "cluster_id"}
    event = b2b_event(a, f"Day {w.run}", "Sofia", "BG", "Europe/Sofia", days_ahead=40)
    sign_up = {
        "company_id": w.spare_company,
        "attendee": {"name": "Iva", "email": f"iva.{w.run}@example.org", "language": "bg"},
    }
    cluster = {"name": f"Other {w.run}", "short_name": f"O{w.run}", "country": "RS", "sectors": ["ict"]}
    agreement = {
        "title": "Pact",
        "signed_on": "2026-01-01",
        "scope": "Together",
        "cluster_ids": [a, w.cluster_b],
    }
    R = Route
    return [
        *(
            R(s, "GET", p, PUBLIC)
            for s in SERVICES
            for p in ("/healthz", "/readyz", "/metrics", "/asyncapi.json")
        ),
        *(R(s, "GET", "/dead-letters", OPERATOR) for s in SERVICES),
        *(R(s, "POST", "/dead-letters/{dead_letter_id}/redrive", OPERATOR) for s in SERVICES),
        # registration
        R("registration", "GET", "/clusters", MEMBER),
        R("registration", "POST", "/clusters", OPERATOR, cluster),
        R("registration", "GET", "/clusters/{cluster_id}", MEMBER),
        R("registration", "POST", "/clusters/{cluster_id}/api-keys", CLUSTER_A),
        R("registration", "GET", "/clusters/{cluster_id}/api-keys", CLUSTER_A),
        R("registration", "DELETE", "/clusters/{cluster_id}/api-keys/{key_id}", CLUSTER_A),
        R("registration", "GET", "/agreements", MEMBER),
        R("registration", "POST", "/agreements", OPERATOR, agreement),
        R("registration", "POST", "/companies", CLUSTER_A, company),
        R("registration", "GET", "/companies", MEMBER),
        R("registration", "GET", "/companies/{company_id}", CLUSTER_A, hidden=True),
        R("registration", "PUT", "/companies/{company_id}", CLUSTER_A, fields, hidden=True),
        R("registration", "PATCH", "/companies/{company_id}", CLUSTER_A, {"website": None}, hidden=True),
        R("registration", "DELETE", "/companies/{company_id}", CLUSTER_A, hidden=True),
        R("registration", "GET", "/companies/{company_id}/export", CLUSTER_A, hidden=True),
        R("registration", "POST", "/events", CLUSTER_A, event),
        R("registration", "GET", "/events", MEMBER),
        R("registration", "GET", "/events/{event_id}", MEMBER),
        R("registration", "PATCH", "/events/{event_id}", CLUSTER_A, {"venue": "NDK"}),
        R("registration", "POST", "/events/{event_id}/participants", CLUSTER_A, sign_up, hidden=True),
        R("registration", "GET", "/events/{event_id}/participants", MEMBER),
        R(
            "registration",
            "DELETE",
            "/events/{event_id}/participants/{participant_id}",
            CLUSTER_A,
            hidden=True,
        ),
        R(
            "registration",
            "PATCH",
            "/events/{event_id}/participants/{participant_id}",
            CLUSTER_A,
            {"languages": ["bg", "en"]},
            hidden=True,
        ),
        R("registration", "GET", "/imports/template.csv", PUBLIC),
        R("registration", "GET", "/imports/template.xlsx", PUBLIC),
        R("registration", "POST", "/clusters/{cluster_id}/imports", CLUSTER_A, b"legal_name,country\nX,BG\n"),
        R("registration", "GET", "/clusters/{cluster_id}/imports/{import_id}", CLUSTER_A),
        # matching
        R("matching", "GET", "/participants/{participant_id}/recommendations", PARTICIPANT_P),
        R("matching", "GET", "/events/{event_id}/pairs", OPERATOR),
        R("matching", "GET", "/events/{event_id}/suggestions", OPERATOR),
        R("matching", "GET", "/participants/{participant_id}/suggestions", PARTICIPANT_P),
        R("matching", "GET", "/search", PARTICIPANTS),
        R("matching", "GET", "/clusters/{cluster_id}/partner-candidates", OPERATOR),
        R("matching", "POST", "/admin/rebuild", OPERATOR, try_allowed=False),
        R("matching", "POST", "/participants/{participant_id}/meetings", PARTICIPANT_P, {"with": [w.r]}),
        R("matching", "GET", "/participants/{participant_id}/meetings", PARTICIPANT_P),
        R("matching", "POST", "/meetings/{meeting_id}/{action}", {"token_q", "operator"}, {}),
        R("matching", "GET", "/meetings/{meeting_id}", PARTIES),
        R("matching", "PUT", "/meetings/{meeting_id}/outcome", PARTIES, {"held": True}),
        R("matching", "GET", "/events/{event_id}/meetings", OPERATOR),
        R("matching", "POST", "/events/{event_id}/schedule", OPERATOR, {"seconds": 0}),
        R("matching", "GET", "/events/{event_id}/schedule", OPERATOR),
        R("matching", "GET", "/participants/{participant_id}/agenda", PARTICIPANT_P),
        R("matching", "GET", "/participants/{participant_id}/agenda.ics", PARTICIPANT_P),
        R("matching", "GET", "/participants/{participant_id}/agenda.html", PARTICIPANT_P),
        R("matching", "GET", "/act/{token}", NOBODY),
        R("matching", "POST", "/act/{token}", NOBODY),
        # notifications
        R("notifications", "GET", "/participants/{participant_id}/inbox", PARTICIPANT_P),
        R("notifications", "GET", "/participants/{participant_id}/preferences", PARTICIPANT_P),
        R("notifications", "PUT", "/participants/{participant_id}/preferences", PARTICIPANT_P, {"muted": []}),
        *(
            R("notifications", m, f"/{page}/{{token}}", NOBODY)
            for m in ("GET", "POST")
            for page in ("unsubscribe", "preferences")
        ),
        R("notifications", "GET", "/outgoing/summary", OPERATOR),
        R("notifications", "GET", "/outgoing", OPERATOR),
        R("notifications", "POST", "/outgoing/{message_id}/redrive", OPERATOR),
        R(
            "notifications",
            "PUT",
            "/clusters/{cluster_id}/webhook",
            OPERATOR,
            {"url": "http://127.0.0.1:9/hook"},
        ),
        R("notifications", "GET", "/clusters/{cluster_id}/webhook", OPERATOR),
        R("notifications", "DELETE", "/clusters/{cluster_id}/webhook", OPERATOR),
        # reporting: the partnership's numbers and its catalogue (contacts only with consent) are
        # open to its members' staff and the public; only rebuilding is the operator's.
        *(
            R("reporting", "GET", p, PUBLIC)
            for p in (
                "/reports/partnership",
                "/reports/partnership.{fmt}",
                "/reports/partnership/by/{by}",
                "/reports/partnership/by/{by}.{fmt}",
                "/reports/events/{event_id}",
                "/reports/events/{event_id}.{fmt}",
                "/reports/internationalisation",
                "/reports/internationalisation.{fmt}",
                "/brochure.html",
                "/brochure.pdf",
                "/dashboard",
            )
        ),
        R("reporting", "POST", "/admin/rebuild", OPERATOR, try_allowed=False),
    ]


@dataclass
class World:
    run: str
    cluster_a: str
    cluster_b: str
    company_a: str
    spare_company: str
    event: str
    p: str
    r: str
    meeting: str
    credentials: dict[str, str]
    disposable: dict[str, list[str]]


async def _created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    created: dict[str, Any] = response.json()
    return created


@pytest_asyncio.fixture(loop_scope="session")
async def world(platform: Stack) -> World:
    run = uuid.uuid4().hex[:6]
    async with as_operator(platform) as registration, as_operator(platform, "matching") as matching:
        clusters = [
            await _created(
                registration,
                "/clusters",
                {"name": f"{n} {run}", "short_name": f"{n}{run}", "country": "BG", "sectors": ["ict"]},
            )
            for n in ("Alpha", "Beta")
        ]
        a, b = clusters[0]["id"], clusters[1]["id"]

        async def company(cluster: str, name: str) -> str:
            body = {"cluster_id": cluster, "legal_name": f"{name} {run}", "country": "BG", "sectors": ["ict"]}
            return str((await _created(registration, "/companies", body))["id"])

        companies = {n: await company(a, n) for n in ("P", "R", "Q", "Spare", "Gone", "Leaving")}
        event = await _created(
            registration,
            "/events",
            b2b_event(a, f"Guarded {run}", "Sofia", "BG", "Europe/Sofia", tables=2),
        )
        people: dict[str, dict[str, Any]] = {}
        for name in ("P", "R", "Q", "Leaving"):
            people[name] = await _created(
                registration,
                f"/events/{event['id']}/participants",
                {
                    "company_id": companies[name],
                    "attendee": {
                        "name": name,
                        "email": f"{name.lower()}.{run}@example.org",
                        "language": "en",
                    },
                },
            )
        p, q, r = (people[n]["id"] for n in ("P", "Q", "R"))

        async def known() -> bool:
            # Each of them: sign-ups on different partitions are taken in no particular order.
            answers = [await matching.get(f"/participants/{x}/meetings") for x in (p, q, r)]
            return all(answer.status_code == 200 for answer in answers)

        await eventually(known)
        meeting: dict[str, Any] = {}

        async def requested() -> bool:
            # The event comes on a topic of its own: matching may know its people before it,
            # and says "try again" meanwhile.
            response = await matching.post(f"/participants/{p}/meetings", json={"with": [q]})
            if response.status_code == 503 and "Retry-After" in response.headers:
                return False
            assert response.status_code in (200, 201), response.text
            meeting.update(response.json())
            return True

        await eventually(requested)
        spare_key = await _created(registration, f"/clusters/{a}/api-keys", {})
    return World(
        run=run,
        cluster_a=a,
        cluster_b=b,
        company_a=companies["P"],
        spare_company=companies["Spare"],
        event=event["id"],
        p=p,
        r=r,
        meeting=meeting["id"],
        credentials={
            "made_up": "c2fk.0123456789abcdef.not-a-real-secret",
            "key_a": clusters[0]["api_key"]["key"],
            "key_b": clusters[1]["api_key"]["key"],
            "token_p": people["P"]["access_token"],
            "token_q": people["Q"]["access_token"],
            "token_r": people["R"]["access_token"],
            "operator": platform.config.operator_token(),
        },
        disposable={
            "/companies/{company_id}": [companies["Gone"]],
            "/events/{event_id}/participants/{participant_id}": [people["Leaving"]["id"]],
            "/clusters/{cluster_id}/api-keys/{key_id}": [spare_key["id"]],
        },
    )


def fill(route: Route, w: World) -> str:
    """The route's path with the world's ids (a made-up one where any will do)."""
    values = {
        "cluster_id": w.cluster_a,
        "company_id": w.company_a,
        "event_id": w.event,
        "participant_id": w.p,
        "meeting_id": w.meeting,
        "action": "decline",
        "token": "forged." + uuid.uuid4().hex,
        "fmt": "csv",
        "by": "country",
        "import_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "dead_letter_id": str(uuid.uuid4()),
        "key_id": "0000000000000000",
    }
    if route.method == "DELETE" and route.path in w.disposable:
        key = (
            "key_id"
            if "key_id" in route.path
            else "participant_id"
            if "participant_id" in route.path
            else "company_id"
        )
        values[key] = w.disposable[route.path][0]
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)


async def call(platform: Stack, route: Route, w: World, caller: str) -> httpx.Response:
    headers = {} if caller == "nobody" else {"Authorization": f"Bearer {w.credentials[caller]}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(route.body, bytes):
        kwargs["content"] = route.body
        headers["Content-Type"] = "text/csv"
    elif route.body is not None:
        kwargs["json"] = route.body
    params = {"dry_run": "true"} if route.path.endswith("/imports") else {}
    params |= {"q": "sensors"} if route.path == "/search" else {}
    async with httpx.AsyncClient(base_url=platform.config.service_url(route.service), timeout=60) as client:
        return await client.request(route.method, fill(route, w), params=params, **kwargs)


def hides(response: httpx.Response) -> bool:
    """Another cluster's resource answered as if it did not exist: 404, or 422 "unknown …"."""
    return response.status_code == 404 or (response.status_code == 422 and "unknown" in response.text)


async def test_every_endpoint_admits_only_its_callers(platform: Stack, world: World) -> None:
    table = routes(world)
    # Every operation of every service has a row: no endpoint escapes the table.
    listed = {(r.service, r.method, r.path) for r in table}
    for service in SERVICES:
        async with httpx.AsyncClient(base_url=platform.config.service_url(service)) as client:
            spec = (await client.get("/openapi.json")).json()
        for path, item in spec["paths"].items():
            for method in item:
                assert (service, method.upper(), path) in listed, f"{service} {method.upper()} {path}: no row"

    wrong: list[str] = []
    checked = 0
    gate = asyncio.Semaphore(8)  # routes are independent: eight at a time, callers in order

    async def check(route: Route) -> None:
        nonlocal checked
        refused_first = sorted(CALLERS, key=lambda c: c in route.allowed)  # allowed ones last
        async with gate:
            for caller in refused_first:
                if caller in route.allowed and not route.try_allowed:
                    continue
                response = await call(platform, route, world, caller)
                checked += 1
                status = response.status_code
                label = (
                    f"{route.service} {route.method} {route.path} as {caller}: {status} {response.text[:120]}"
                )
                if status >= 500:
                    wrong.append("server error: " + label)
                elif caller in route.allowed and status in REFUSED:
                    wrong.append("refused the right caller: " + label)
                elif (
                    caller not in route.allowed
                    and status not in REFUSED
                    and not (route.hidden and caller == "key_b" and hides(response))
                ):
                    wrong.append("let in the wrong caller: " + label)

    await asyncio.gather(*(check(route) for route in table))
    print(f"{len(table)} operations × {len(CALLERS)} callers: {checked} calls")
    assert not wrong, "\n".join(wrong)


async def test_tokens_and_keys_never_reach_the_logs(platform: Stack, world: World) -> None:
    secrets = [v for k, v in world.credentials.items() if k != "made_up"]
    for log in platform.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret.split(".")[-1] not in text, f"{log.name} holds a credential"


@pytest.fixture
def guarded(platform: Stack) -> Iterator[str]:
    """A matching process of its own, with a low limit on refused credentials."""
    port = free_port()
    child = spawn(
        f"matching-limited-{uuid.uuid4().hex[:4]}",
        [
            sys.executable,
            "-m",
            "c2f_shared.service.serve",
            "matching",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        platform.logs,
        env={
            **platform.service_env("matching"),
            "C2F_MATCHING_AUTH_FAILURES_PER_MINUTE": "5",
            "C2F_MATCHING_CONSUMER_GROUP": f"matching-limited-{uuid.uuid4().hex[:6]}",
        },
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(child, url)
        yield url
    finally:
        child.stop()


async def test_refused_credentials_are_rate_limited_per_address(world: World, guarded: str) -> None:
    path = f"/participants/{world.p}/agenda"
    guesser = {"X-Forwarded-For": "203.0.113.9"}  # uvicorn trusts the header from 127.0.0.1
    async with httpx.AsyncClient(base_url=guarded, timeout=30) as client:
        for n in range(5):
            guess = {"Authorization": f"Bearer c2fp.{world.p}.guess{n}", **guesser}
            assert (await client.get(path, headers=guess)).status_code == 403
        right = {"Authorization": f"Bearer {world.credentials['token_p']}"}
        locked = await client.get(path, headers={**right, **guesser})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert (await client.get("/healthz", headers=guesser)).status_code == 200
        # The participant, from its own address, is not locked out by the guesser.
        assert (
            await client.get(path, headers={**right, "X-Forwarded-For": "198.51.100.4"})
        ).status_code == 200
