"""Notifications end to end, read at a real SMTP server: each message in its reader's
language with plain-text and HTML parts; a meeting request whose accept link works in a
real browser; the agenda, the move and the cancellation as calendar files (parsed with
icalendar: METHOD, UID, SEQUENCE, times in the venue's zone); the inbox API; unsubscribing
through a signed link; and every message exactly once."""

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import icalendar
import pytest
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

from c2f_cli.processes import free_port
from tests.browser import chromium, output
from tests.e2e.scene import SLOTS, TZ, Scene
from tests.support import eventually, of_kind, read_mail, text_of

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def mail_to(scene: Scene, pid: str, kind: str) -> list[EmailMessage]:
    address = scene.emails[pid]
    return [m for m in of_kind(read_mail(scene.platform.config.maildir), kind) if address in str(m["To"])]


async def one_mail(scene: Scene, pid: str, kind: str) -> EmailMessage:
    await eventually(lambda: len(mail_to(scene, pid, kind)) >= 1)
    [mail] = mail_to(scene, pid, kind)
    return mail


async def notifications(scene: Scene, path: str, pid: str) -> httpx.Response:
    """GET from notifications with participant `pid`'s token."""
    async with httpx.AsyncClient(base_url=scene.platform.config.service_url("notifications")) as client:
        return await client.get(path, headers={"Authorization": f"Bearer {scene.tokens[pid]}"})


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None, "no HTML part"
    html: str = part.get_content()
    return html


def calendar_of(mail: EmailMessage) -> icalendar.Calendar:
    [part] = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
    content = part.get_content()
    return icalendar.Calendar.from_ical(content if isinstance(content, bytes | str) else bytes(content))


def links_in(mail: EmailMessage) -> list[str]:
    return re.findall(r'href="([^"]+)"', html_of(mail))


async def test_a_meeting_told_in_each_readers_language_with_calendar_updates(scene: Scene) -> None:
    host = await scene.cluster("GR")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    event = await scene.event(host, day=tomorrow)
    ana = await scene.sign_up(event, {"company_id": await scene.company(host, "Ana")}, language="es")
    boris = await scene.sign_up(
        event, {"company_id": await scene.company(host, "Boris")}, language="bg", consent_share_contact=True
    )

    # Registration confirmed, in each reader's language, text and HTML.
    welcome = await one_mail(scene, boris, "registration_confirmed")
    assert welcome["Content-Language"] == "bg" and "Brokerage" in welcome["Subject"]
    assert "Уважаеми" in text_of(welcome) and "Уважаеми" in html_of(welcome)
    assert (await one_mail(scene, ana, "registration_confirmed"))["Content-Language"] == "es"

    # A request: Boris reads it in Bulgarian, with accept and decline links that work in a browser.
    asked = await scene.ask(ana, boris)
    request = await one_mail(scene, boris, "meeting_request")
    assert f"Ana {scene.run}" in request["Subject"]
    accept, decline = [u for u in links_in(request) if "/act/" in u]
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(accept)
        assert f"Ana {scene.run}" in await page.inner_text("body")
        await page.screenshot(path=output("accept-link.png"))
        await page.click("button")
        await page.wait_for_load_state()
        assert "Accepted" in await page.inner_text("h1")
    meeting = (await scene.as_(ana).get(f"/meetings/{asked['id']}")).json()
    assert meeting["status"] == "accepted"
    async with httpx.AsyncClient() as client:
        again = await client.post(decline)  # the request is answered: the other link does nothing
    assert "Nothing to do" in again.text
    accepted = await one_mail(scene, ana, "meeting_accepted")
    assert accepted["Content-Language"] == "es" and f"Boris {scene.run}" in accepted["Subject"]

    # The agenda: one invitation per meeting, in the venue's zone, with the meeting's UID.
    await scene.schedule(event)
    placed = await scene.placements(event)
    agenda = await one_mail(scene, ana, "schedule_published")
    cal = calendar_of(agenda)
    assert str(cal["METHOD"]) == "REQUEST"
    [vevent] = cal.walk("VEVENT")
    uid = f"{asked['id']}@c2future-match"
    assert str(vevent["UID"]) == uid and vevent.decoded("SEQUENCE") == 0
    start = vevent.decoded("DTSTART")
    assert str(start.tzinfo) == TZ and start.strftime("%Y-%m-%dT%H:%M") == placed[asked["id"]][0]
    assert placed[asked["id"]][1] in str(vevent["LOCATION"])
    assert f"({TZ})" in text_of(agenda) or TZ in text_of(agenda)
    # Boris agreed to share his contact; Ana did not, so nothing of hers reaches Boris.
    to_boris = await one_mail(scene, boris, "schedule_published")
    assert scene.emails[ana] not in to_boris.as_string()

    # Reminders wait in the inbox; the inbox shows what was sent.
    inbox = (await notifications(scene, f"/participants/{boris}/inbox", boris)).json()
    kinds = Counter(m["kind"] for m in inbox["messages"] if m["status"] == "sent")
    assert kinds["registration_confirmed"] == kinds["meeting_request"] == kinds["schedule_published"] == 1
    assert {u["kind"] for u in inbox["upcoming"]} >= {"reminder", "outcome_request"}
    assert (await notifications(scene, f"/participants/{boris}/inbox", ana)).status_code == 403

    # Boris can no longer make that slot: the meeting moves, same UID, a higher SEQUENCE.
    taken = placed[asked["id"]][0]
    free = [f"{tomorrow}T{t}" for t in SLOTS if f"{tomorrow}T{t}" != taken]
    assert (
        await scene.registration.patch(f"/events/{event}/participants/{boris}", json={"availability": free})
    ).status_code == 200

    async def stale() -> bool:
        return bool((await scene.as_operator().get(f"/events/{event}/schedule")).json()["stale"])

    await eventually(stale)
    await scene.schedule(event)
    moved = await one_mail(scene, ana, "meeting_moved")
    [vevent] = calendar_of(moved).walk("VEVENT")
    assert str(vevent["UID"]) == uid and vevent.decoded("SEQUENCE") == 1
    assert vevent.decoded("DTSTART").strftime("%Y-%m-%dT%H:%M") != taken

    # Ana cancels: Boris gets METHOD:CANCEL for the same UID, a higher SEQUENCE still.
    await scene.answer(ana, asked["id"], "cancel")
    cancelled = await one_mail(scene, boris, "meeting_cancelled")
    cal = calendar_of(cancelled)
    [vevent] = cal.walk("VEVENT")
    assert str(cal["METHOD"]) == "CANCEL" and str(vevent["UID"]) == uid and vevent.decoded("SEQUENCE") == 2
    assert not mail_to(scene, ana, "meeting_cancelled"), "who cancelled is not told"

    async def reminders_gone() -> bool:
        inbox = (await notifications(scene, f"/participants/{boris}/inbox", boris)).json()
        return "reminder" not in {u["kind"] for u in inbox["upcoming"]}

    await eventually(reminders_gone)
    every = read_mail(scene.platform.config.maildir)
    ids = Counter(str(m["Message-ID"]) for m in every)
    assert max(ids.values()) == 1, "a message was sent twice"


async def test_unsubscribing_from_digests_through_the_signed_link(scene: Scene) -> None:
    host = await scene.cluster("IT")
    event = await scene.event(host, day=(datetime.now(UTC) + timedelta(days=2)).date().isoformat())
    need = {
        "title": "Sensori per la qualità dell'aria",
        "description": "Cerchiamo stazioni PM2.5.",
        "kind": "supplier",
        "category": "air_quality_monitoring",
        "language": "it",
    }
    offer = {
        "title": "Estaciones de calidad del aire",
        "description": "Miden PM2.5 y NO2.",
        "category": "air_quality_monitoring",
        "language": "es",
    }
    seeker = await scene.post(
        "/companies",
        {
            "cluster_id": host,
            "legal_name": f"Cerca {scene.run}",
            "country": "IT",
            "sectors": ["ict"],
            "needs": [need],
        },
    )
    maker = await scene.post(
        "/companies",
        {
            "cluster_id": host,
            "legal_name": f"Hace {scene.run}",
            "country": "ES",
            "sectors": ["ict"],
            "offers": [offer],
        },
    )
    luca = await scene.sign_up(event, {"company_id": seeker["id"]}, language="it")
    await scene.sign_up(event, {"company_id": maker["id"]}, language="es")
    digest = await one_mail(scene, luca, "suggestions_digest")
    assert digest["Content-Language"] == "it" and f"Hace {scene.run}" in text_of(digest)
    unsubscribe = digest["List-Unsubscribe"].strip("<>")
    assert unsubscribe in links_in(digest)
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(unsubscribe)
        await page.click("button")
        await page.wait_for_load_state()
        said = await page.inner_text("body")
    assert "suggeriment" in said.lower() or "partner" in said.lower()
    prefs = (await notifications(scene, f"/participants/{luca}/preferences", luca)).json()
    assert prefs["muted"] == ["suggestions_digest"]
    async with httpx.AsyncClient() as client:
        forged = unsubscribe[:-3] + ("AAA" if not unsubscribe.endswith("AAA") else "BBB")
        assert (await client.get(forged)).status_code == 403
        # RFC 8058: what a mail client's one-click unsubscribe sends.
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        one_click = await client.post(unsubscribe, content=b"List-Unsubscribe=One-Click", headers=form)
        assert one_click.status_code == 200, one_click.text
    async with httpx.AsyncClient(base_url=scene.platform.config.service_url("notifications")) as client:
        assert (await client.get("/outgoing")).status_code == 401
        headers = {"Authorization": f"Bearer {scene.tokens[luca]}"}
        assert (await client.get("/outgoing", headers=headers)).status_code == 403
        operator = {"Authorization": f"Bearer {scene.platform.config.operator_token()}"}
        summary = (await client.get("/outgoing/summary", headers=operator)).json()
    assert summary["sent"] > 0


class Receiver:
    """A cluster's own system: an HTTP endpoint on 127.0.0.1 that refuses its first call
    (to prove the retry) and keeps the rest."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.connections: list[Any] = []  # each call's client (host, port)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.connections.append(scope["client"])
        status = 503 if self.refused == 0 else 204
        if status == 503:
            self.refused += 1
        else:
            self.calls.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_a_clusters_webhook_hears_its_participants_facts_signed(scene: Scene) -> None:
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        host = await scene.cluster("RS")
        base = scene.platform.config.service_url("notifications")
        operator = {"Authorization": f"Bearer {scene.platform.config.operator_token()}"}
        async with httpx.AsyncClient(base_url=base, headers=operator) as client:
            made = await client.put(f"/clusters/{host}/webhook", json={"url": f"http://127.0.0.1:{port}/c2f"})
            assert made.status_code == 200, made.text
            secret = made.json()["secret"]
            assert "secret" not in (await client.get(f"/clusters/{host}/webhook")).json() or (
                (await client.get(f"/clusters/{host}/webhook")).json()["secret"] is None
            )
            bad = await client.put(f"/clusters/{host}/webhook", json={"url": "not a url"})
            assert bad.status_code == 422 and "url" in bad.text
        event = await scene.event(host, day=(datetime.now(UTC) + timedelta(days=3)).date().isoformat())
        pid = await scene.sign_up(event, {"company_id": await scene.company(host, "Hook")}, language="sr")
        await eventually(lambda: len(receiver.calls) >= 1)
        headers, body = receiver.calls[0]
        # As a cluster would: the Standard Webhooks library checks id, timestamp and signature.
        assert secret.startswith("whsec_")
        fact = Webhook(secret).verify(body, headers)
        assert headers["webhook-id"] == fact["id"], "the delivery id is the receiver's dedupe key"
        assert "x-c2f-signature" not in headers, "the former scheme only for keys issued before"
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.replace(pid.encode(), b"someone-else"), headers)
        assert (fact["kind"], fact["participant_id"]) == ("registration_confirmed", pid)
        assert scene.emails[pid] not in body.decode(), "no contact data to the webhook"
        assert receiver.refused == 1, "the first call was refused and retried"
        await scene.sign_up(event, {"company_id": await scene.company(host, "Hook 2")}, language="bg")
        await eventually(lambda: len(receiver.calls) >= 2)
        assert receiver.connections[-1] == receiver.connections[-2], "one kept-alive connection"
    finally:
        server.should_exit = True
        await serving
