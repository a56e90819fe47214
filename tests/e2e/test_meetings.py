"""Meetings end to end over HTTP, against the whole platform: requests and answers with their
rules, the schedule published, agendas served as JSON, .ics (parsed with icalendar) and a
printable page, a cancellation that moves no other meeting, an availability change that moves
only what must move, and each side's outcome after the meeting."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from c2f_shared import topics
from tests.browser import chromium, output
from tests.e2e.scene import SLOTS, TZ, Scene
from tests.support import eventually, first_on_topic

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def printable_agenda(scene: Scene, pid: str) -> str:
    """Open the participant's printable agenda in Chromium as a person would (with its token),
    save a screenshot and the printed PDF, and answer the text a person sees."""
    url = f"{scene.platform.config.service_url('matching')}/participants/{pid}/agenda.html"
    async with chromium() as browser:
        context = await browser.new_context(
            extra_http_headers={"Authorization": f"Bearer {scene.tokens[pid]}"}
        )
        page = await context.new_page()
        response = await page.goto(url)
        assert response is not None and response.ok
        await page.screenshot(path=output("agenda.png"), full_page=True)
        pdf = await page.pdf(format="A4", path=output("agenda.pdf"))
        assert pdf.startswith(b"%PDF")
        return await page.inner_text("body")


async def test_requests_answers_schedule_agenda_and_outcomes(scene: Scene) -> None:
    cluster = await scene.cluster("ES")
    event = await scene.event(cluster)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    names = ("Alfa", "Beta", "Gamma", "Delta")
    companies = {n: await scene.company(cluster, n) for n in names}
    p = {n: await scene.sign_up(event, {"company_id": companies[n]}) for n in names[:3]}
    p["Delta"] = await scene.sign_up(
        event,
        {"company_id": companies["Delta"]},
        availability=[f"{yesterday}T{t}" for t in SLOTS[1:]],  # Delta arrives late
        consent_share_contact=True,
    )
    elsewhere = await scene.event(cluster)
    stranger = await scene.sign_up(elsewhere, {"company_id": companies["Alfa"]})

    # Requests and answers, and the rules around them.
    ab = await scene.ask(p["Alfa"], p["Beta"])
    assert ab["status"] == "requested" and ab["answers"] == {p["Beta"]: "requested"}
    assert [x["name"] for x in ab["parties"]] == [f"Alfa {scene.run}", f"Beta {scene.run}"]
    assert (await scene.answer(p["Beta"], ab["id"], "accept"))["status"] == "accepted"
    await scene.answer(p["Beta"], ab["id"], "accept", expect=409)
    await scene.ask(p["Alfa"], p["Beta"], expect=409)  # one request per pair
    ag = await scene.ask(p["Alfa"], p["Gamma"])
    await scene.answer(p["Delta"], ag["id"], "accept", expect=403)  # not invited
    assert (await scene.answer(p["Gamma"], ag["id"], "decline"))["status"] == "declined"
    await scene.answer(p["Gamma"], ag["id"], "accept", expect=409)
    await scene.answer(p["Alfa"], ag["id"], "cancel", expect=409)  # nothing left to cancel
    myself = await scene.ask(p["Alfa"], p["Alfa"], expect=422)
    assert myself["detail"][0]["loc"] == ["body", "with"] and "itself" in myself["detail"][0]["msg"]
    other_event = await scene.ask(p["Alfa"], stranger, expect=422)
    assert "not participants of this event" in other_event["detail"][0]["msg"]
    three = await scene.ask(p["Alfa"], p["Gamma"], p["Delta"], expect=422)
    assert "C2C" in three["detail"][0]["msg"]
    gd = await scene.ask(p["Gamma"], p["Delta"])
    mutual = await scene.ask(p["Delta"], p["Gamma"], expect=200)  # asking back accepts theirs
    assert mutual["id"] == gd["id"] and mutual["status"] == "accepted" and mutual["priority"] > gd["priority"]
    db = await scene.ask(p["Delta"], p["Beta"])
    await scene.answer(p["Beta"], db["id"], "accept")
    ad = await scene.ask(p["Alfa"], p["Delta"])
    await scene.answer(p["Delta"], ad["id"], "accept")
    assert (await scene.as_(p["Gamma"]).get(f"/meetings/{ab['id']}")).status_code == 403
    scene.matching.headers["Authorization"] = "Bearer c2fp.nobody.nothing"
    assert (await scene.matching.post(f"/meetings/{ab['id']}/cancel")).status_code == 403

    # The schedule: every accepted meeting placed, every rule kept.
    published = await scene.schedule(event)
    assert published["accepted"] == 4 and published["scheduled"] == 4 and published["schedule_version"] == 1
    # how good it is, in the organiser's terms: all four placed, and nothing could do better
    assert published["value"] == published["bound"] and published["share_of_bound"] == 1.0
    placed = await scene.placements(event)
    grid = (await scene.as_operator().get(f"/events/{event}/schedule")).json()["meetings"]
    busy = Counter(
        (party["participant_id"], m["placement"]["slot_id"]) for m in grid for party in m["parties"]
    )
    assert max(busy.values()) == 1
    assert max(Counter(slot for slot, _ in placed.values()).values()) <= 2
    delta_slots = {
        m["placement"]["slot_id"] for m in grid if p["Delta"] in [x["participant_id"] for x in m["parties"]]
    }
    assert f"{yesterday}T09:00" not in delta_slots
    assert all(slot[11:] in SLOTS for slot, _ in placed.values())

    # Alfa's agenda: JSON, .ics, and a printable page.
    agenda = (await scene.as_(p["Alfa"]).get(f"/participants/{p['Alfa']}/agenda")).json()
    assert [i["status"] for i in agenda["items"]] == ["scheduled", "scheduled"]
    assert agenda["timezone"] == TZ
    with_delta = next(i for i in agenda["items"] if i["meeting_id"] == ad["id"])
    assert with_delta["with"][0]["attendee"], "Delta agreed to share its attendee's name"
    assert next(i for i in agenda["items"] if i["meeting_id"] == ab["id"])["with"][0]["attendee"] is None
    ics = await scene.as_(p["Alfa"]).get(f"/participants/{p['Alfa']}/agenda.ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(ics.content)
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {f"{ab['id']}@c2future-match", f"{ad['id']}@c2future-match"}
    first = events[f"{ab['id']}@c2future-match"]
    start = first.decoded("DTSTART")
    assert str(start.tzinfo) == TZ and start.strftime("%Y-%m-%dT%H:%M") == placed[ab["id"]][0]
    assert first.decoded("SEQUENCE") == 0 and str(first["STATUS"]) == "CONFIRMED"
    assert placed[ab["id"]][1] in str(first["LOCATION"])
    assert any(c.name == "VTIMEZONE" for c in calendar.subcomponents)
    seen = await printable_agenda(scene, p["Alfa"])
    assert (
        f"Agenda of Alfa {scene.run}" in seen and f"Beta {scene.run}" in seen and f"Delta {scene.run}" in seen
    )
    assert f"times in {TZ}" in seen and placed[ab["id"]][1] in seen
    slot = placed[ab["id"]][0][11:]
    assert slot in seen, f"the meeting's venue time {slot} is on the page"
    assert (await scene.as_(p["Beta"]).get(f"/participants/{p['Alfa']}/agenda.ics")).status_code == 403

    # Beta cancels its meeting with Alfa: it leaves the schedule at once; nothing else moves.
    cancelled = await scene.answer(p["Beta"], ab["id"], "cancel")
    assert cancelled["status"] == "cancelled" and cancelled["placement"] is None
    again = await scene.schedule(event)
    assert (again["schedule_version"], again["moved"], again["scheduled"]) == (2, 0, 3)
    after = await scene.placements(event)
    assert after == {k: v for k, v in placed.items() if k != ab["id"]}
    calendar = icalendar.Calendar.from_ical(
        (await scene.as_(p["Alfa"]).get(f"/participants/{p['Alfa']}/agenda.ics")).content
    )
    gone = next(e for e in calendar.walk("VEVENT") if str(e["UID"]) == f"{ab['id']}@c2future-match")
    assert str(gone["STATUS"]) == "CANCELLED" and gone.decoded("SEQUENCE") == 1

    def unscheduled(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == "MeetingUnscheduled" and body["data"]["meeting_id"] == ab["id"])

    record = await first_on_topic(scene.platform.config.kafka_bootstrap, topics.MEETINGS, unscheduled)
    assert json.loads(record.value)["data"]["reason"] == "cancelled"
    assert record.key.decode() == event

    # Gamma can no longer make its slot with Delta: that meeting moves, and only that one.
    gd_slot = after[gd["id"]][0]
    free = [f"{yesterday}T{t}" for t in SLOTS if f"{yesterday}T{t}" != gd_slot]
    changed = await scene.registration.patch(
        f"/events/{event}/participants/{p['Gamma']}", json={"availability": free}
    )
    assert changed.status_code == 200, changed.text

    async def stale() -> bool:
        return bool((await scene.as_operator().get(f"/events/{event}/schedule")).json()["stale"])

    await eventually(stale)
    third = await scene.schedule(event)
    assert third["scheduled"] == 3 and third["moved"] >= 1
    latest = await scene.placements(event)
    assert latest[gd["id"]][0] != gd_slot
    moved = {k for k in latest if latest[k] != after[k]}
    assert gd["id"] in moved and len(moved) <= 2, moved

    # After the meeting: each side's outcome, editable later; only the parties may record one.
    outcome = {"held": True, "rating": 4, "follow_up": "offer_sent"}
    recorded = await scene.as_(p["Alfa"]).put(f"/meetings/{ad['id']}/outcome", json=outcome)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["revision"] == 1
    later = await scene.as_(p["Alfa"]).put(
        f"/meetings/{ad['id']}/outcome", json={**outcome, "follow_up": "agreement_signed"}
    )
    assert later.json()["revision"] == 2 and later.json()["follow_up"] == "agreement_signed"
    assert (await scene.as_(p["Gamma"]).put(f"/meetings/{ad['id']}/outcome", json=outcome)).status_code == 403
    bad = await scene.as_(p["Alfa"]).put(f"/meetings/{ad['id']}/outcome", json={**outcome, "rating": 9})
    assert bad.status_code == 422 and "rating" in bad.text
    assert (await scene.as_(p["Beta"]).put(f"/meetings/{ab['id']}/outcome", json=outcome)).status_code == 409


async def test_organiser_rules_and_c2c_delegations(scene: Scene) -> None:
    host = await scene.cluster("IT")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    event = await scene.event(host, day=tomorrow, auto_accept=True, max_requests=1)
    a, b, c = [await scene.sign_up(event, {"company_id": await scene.company(host, n)}) for n in "XYZ"]
    assert (await scene.ask(a, b))["status"] == "accepted"  # auto-accept
    capped = await scene.ask(a, c, expect=409)
    assert "most this event allows" in capped["detail"]
    cb = await scene.ask(c, b)
    assert (await scene.as_(a).put(f"/meetings/{cb['id']}/outcome", json={"held": True})).status_code == 403
    await scene.schedule(event, seconds=0)
    early = await scene.as_(c).put(f"/meetings/{cb['id']}/outcome", json={"held": True})
    assert early.status_code == 409 and "has not started yet" in early.json()["detail"]

    # C2C: delegations of three clusters; one declines, the meeting goes on with two.
    clusters = [host, await scene.cluster("GR"), await scene.cluster("RS")]
    c2c = await scene.event(host, kind="c2c", day=tomorrow)
    d1, d2, d3 = [await scene.sign_up(c2c, {"delegation_of": cl}) for cl in clusters]
    meeting = await scene.ask(d1, d2, d3)
    assert len(meeting["parties"]) == 3 and meeting["parties"][1]["name"].endswith("delegation")
    assert (await scene.answer(d2, meeting["id"], "accept"))["status"] == "requested"
    done = await scene.answer(d3, meeting["id"], "decline")
    assert done["status"] == "accepted" and [x["participant_id"] for x in done["parties"]] == [d1, d2]
    published = await scene.schedule(c2c, seconds=0)
    assert published["scheduled"] == 1 and published["method"] == "greedy"


async def test_auto_reschedule_publishes_a_new_version_by_itself(scene: Scene) -> None:
    host = await scene.cluster("BG")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    event = await scene.event(host, day=tomorrow, auto_accept=True, auto_reschedule=True)
    x, y, z = [await scene.sign_up(event, {"company_id": await scene.company(host, n)}) for n in "PQR"]
    xy, xz = await scene.ask(x, y), await scene.ask(x, z)
    await scene.schedule(event)
    before = await scene.placements(event)
    slots = [f"{tomorrow}T{t}" for t in SLOTS if f"{tomorrow}T{t}" != before[xy["id"]][0]]
    changed = await scene.registration.patch(
        f"/events/{event}/participants/{y}", json={"availability": slots}
    )
    assert changed.status_code == 200, changed.text

    async def republished() -> bool:
        grid = (await scene.as_operator().get(f"/events/{event}/schedule")).json()
        return bool(grid["schedule_version"] == 2 and not grid["stale"])

    await eventually(republished)
    after = await scene.placements(event)
    assert after[xy["id"]][0] in slots and len(after) == 2
    assert xz["id"] in after
