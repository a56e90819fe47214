"""Reporting end to end: a brokerage day's requests, schedule and outcomes reach the
breakdowns with the numbers they imply (per event, per country), the same rows come as CSV
and XLSX, and replaying every topic into emptied projections gives identical reports."""

import asyncio
import csv
import io
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from tests.browser import chromium, output
from tests.e2e.scene import Scene
from tests.support import eventually, settled

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_a_brokerage_day_in_the_numbers_and_a_rebuild_changes_nothing(scene: Scene) -> None:
    bg, es = await scene.cluster("BG"), await scene.cluster("ES")
    event = await scene.event(bg)  # yesterday: outcomes can be recorded
    sofia = [
        await scene.sign_up(event, {"company_id": await scene.company(bg, f"Sofia{i}", "BG")})
        for i in range(2)
    ]
    bilbao = [
        await scene.sign_up(event, {"company_id": await scene.company(es, f"Bilbao{i}")}) for i in range(2)
    ]
    across = [await scene.ask(sofia[0], bilbao[0]), await scene.ask(sofia[1], bilbao[1])]
    at_home = await scene.ask(bilbao[0], bilbao[1])
    for meeting, invitee in ((across[0], bilbao[0]), (across[1], bilbao[1]), (at_home, bilbao[1])):
        await scene.answer(invitee, meeting["id"], "accept")
    declined = await scene.ask(sofia[0], sofia[1])
    await scene.answer(sofia[1], declined["id"], "decline")
    await scene.schedule(event)
    outcome = {"held": True, "rating": 5, "follow_up": "agreement_signed"}
    assert (
        await scene.as_(sofia[0]).put(f"/meetings/{across[0]['id']}/outcome", json=outcome)
    ).status_code == 200
    no_show = {"held": False}
    assert (
        await scene.as_(sofia[1]).put(f"/meetings/{across[1]['id']}/outcome", json=no_show)
    ).status_code == 200

    reporting = httpx.AsyncClient(base_url=scene.platform.config.service_url("reporting"))
    async with reporting:

        async def our_day() -> dict[str, Any] | None:
            rows = (await reporting.get("/reports/partnership/by/event")).json()
            row: dict[str, Any] | None = next((r for r in rows if r["group"] == event), None)
            return row if row and row["meetings_held"] == 1 and row["no_shows"] == 1 else None

        async def counted() -> bool:
            return await our_day() is not None

        await eventually(counted)
        row = await our_day()
        assert row is not None
        expected = {
            "participants": 4,
            "companies": 4,
            "meeting_requests": 4,
            "meetings_accepted": 3,
            "meetings_scheduled": 3,
            "meetings_held": 1,
            "no_shows": 1,
            "agreements_signed": 1,
            "cross_border_share": round(2 / 3, 3),
        }
        assert {k: row[k] for k in expected} == expected
        by_country = {r["group"]: r for r in (await reporting.get("/reports/partnership/by/country")).json()}
        assert by_country["BG"]["meetings_accepted"] >= 2 and by_country["ES"]["meetings_accepted"] >= 3

        day = (await reporting.get(f"/reports/events/{event}")).json()
        assert (day["registrations"], day["accepted"], day["scheduled"]) == (4, 3, 3)
        assert (day["unanswered_requests"], day["declined"], day["schedule_quality"]) == (0, 1, 1.0)
        assert day["met_by_country"] == {"BG": {"ES": 2}, "ES": {"BG": 2, "ES": 1}}
        assert sum(s["meetings"] for s in day["slots"]) == 3 and {s["tables"] for s in day["slots"]} == {2}
        assert day["registrations_over_time"][-1]["total"] == 4
        assert (await reporting.get("/reports/events/nope")).status_code == 404
        book = load_workbook(io.BytesIO((await reporting.get(f"/reports/events/{event}.xlsx")).content))
        assert {"slots", "figures", "registrations", "met by country"} <= set(book.sheetnames)
        slots_csv = (await reporting.get(f"/reports/events/{event}.csv")).content.decode("utf-8-sig")
        assert sum(int(r["meetings"]) for r in csv.DictReader(io.StringIO(slots_csv))) == 3

        as_csv = await reporting.get("/reports/partnership/by/event.csv")
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
        assert next(r for r in rows if r["group"] == event)["meetings_accepted"] == "3"
        as_xlsx = await reporting.get("/reports/partnership/by/event.xlsx")
        sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
        assert sheet is not None
        header = [c.value for c in sheet[1]]
        ours = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == event)
        assert ours[header.index("meetings_held")] == 1
        assert (await reporting.get("/reports/partnership/by/planet")).status_code == 422
        totals = list(
            csv.DictReader(
                io.StringIO((await reporting.get("/reports/partnership.csv")).text.lstrip("\ufeff"))
            )
        )
        assert len(totals) == 1 and int(totals[0]["meeting_requests"]) >= 4

        # Replaying every topic into emptied projections gives the same numbers.
        await eventually(lambda: settled(scene.platform.config), within=60)
        before = [(await reporting.get(path)).json() for path in PATHS]
        assert (await reporting.post("/admin/rebuild")).status_code == 401
        operator = {"Authorization": f"Bearer {scene.platform.config.operator_token()}"}
        rebuilt = await reporting.post("/admin/rebuild", headers=operator, timeout=120)
        assert rebuilt.status_code == 200 and rebuilt.json()["replayed"] > 0
        after = [(await reporting.get(path)).json() for path in PATHS]
    assert after == before


PATHS = (
    "/reports/partnership",
    *(f"/reports/partnership/by/{by}" for by in ("cluster", "country", "sector", "event", "month")),
)


async def test_the_brochure_for_mexico_mobility_shows_consented_contacts_only(scene: Scene) -> None:
    host = await scene.cluster("GR")
    contact = {"name": "Γιώργος Παπαδόπουλος", "email": f"giorgos-{scene.run}@example.org", "language": "el"}
    hidden = {"name": "Мария Иванова", "email": f"maria-{scene.run}@example.org", "language": "bg"}

    async def member(
        name: str, country: str, sectors: list[str], markets: list[str], people: list[Any]
    ) -> None:
        offer = {
            "title": f"Offer of {name}",
            "description": "Λύσεις κινητικότητας · Решения за мобилност.",
            "category": "smart_parking",
            "language": "el",
        }
        body = {
            "cluster_id": host,
            "legal_name": f"{name} {scene.run}",
            "country": country,
            "sectors": sectors,
            "offers": [offer],
            "target_markets": markets,
            "contacts": people,
        }
        await scene.post("/companies", body)

    await member("Άστυ Κίνηση", "GR", ["mobility"], ["MX"], [{**contact, "consent": "brochure"}])
    await member("Градски Транспорт", "BG", ["mobility"], ["MX"], [{**hidden, "consent": "matches"}])
    await member("Solo Colombia", "GR", ["mobility"], ["CO"], [])
    await member("Edificio Verde", "GR", ["construction"], ["MX"], [])
    async with httpx.AsyncClient(base_url=scene.platform.config.service_url("registration")) as registration:
        registration.headers.update(scene.registration.headers)
        found = (await registration.get("/companies", params={"q": f"Edificio Verde {scene.run}"})).json()
        [edificio] = [c for c in found["items"] if c["legal_name"] == f"Edificio Verde {scene.run}"]
        patch = {
            "obstacles": [{"kind": "certification"}],
            "connections": [{"market": "MX", "organisation": "CDMX"}],
        }
        assert (await registration.patch(f"/companies/{edificio['id']}", json=patch)).status_code == 200
    reporting = scene.platform.config.service_url("reporting")
    query = {"market": "MX", "sector": "mobility", "cluster": host}
    async with httpx.AsyncClient(base_url=reporting, timeout=60) as client:

        async def listed() -> bool:
            page = (await client.get("/brochure.html", params=query)).text
            return f"Градски Транспорт {scene.run}" in page

        await eventually(listed)
        page = (await client.get("/brochure.html", params=query)).text
        pdf = await client.get("/brochure.pdf", params=query)
        assert (await client.get("/brochure.pdf", params={"market": "Mexico"})).status_code == 422
    assert pdf.headers["content-type"] == "application/pdf"
    path = output("brochure-mx-mobility.pdf")
    path.write_bytes(pdf.content)
    text, pages = await asyncio.to_thread(read_pdf, path)
    for seen in (page, text):
        assert f"Άστυ Κίνηση {scene.run}" in seen and f"Градски Транспорт {scene.run}" in seen
        assert "Solo Colombia" not in seen and "Edificio Verde" not in seen
        assert contact["email"] in seen and hidden["email"] not in seen and hidden["name"] not in seen
    assert "Contents" in text and "for Mexico, mobility" in " ".join(text.split())
    assert len(pages) >= 3, "cover, contents, at least one sector"
    async with httpx.AsyncClient(base_url=reporting) as client:

        async def strategy() -> dict[str, Any] | None:
            [row] = (await client.get("/reports/internationalisation", params={"market": "MX"})).json()
            connected = f"Edificio Verde {scene.run}" in row["companies_already_connected"]
            return row if connected else None

        async def ready() -> bool:
            return await strategy() is not None

        await eventually(ready)
        row = await strategy()
    assert row is not None and row["market"] == "MX"
    cluster_name = next(iter(c for c in row["by_cluster"] if c.startswith("CGR")))
    assert row["by_cluster"][cluster_name] == 3
    assert (
        row["obstacles"]["certification"] >= 1
        and "certification" in row["obstacles_by_sector"]["construction"]
    )


def read_pdf(path: Path) -> tuple[str, list[Path]]:
    """The PDF's text (pdftotext) and every page as a picture to look at (pdftoppm, saved
    beside it in test-output/)."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(path), str(path.with_suffix(""))], check=True)
    return text.stdout, sorted(path.parent.glob(f"{path.stem}-*.png"))


async def test_the_dashboard_as_a_person_sees_it(scene: Scene) -> None:
    reporting = scene.platform.config.service_url("reporting")
    # A partnership agreement between two clusters: the dashboard must not call it 0.
    pact = {"title": f"Dashboard pact {scene.run}", "signed_on": "2026-01-01", "scope": "Together"}
    await scene.post(
        "/agreements", {**pact, "cluster_ids": [await scene.cluster("BG"), await scene.cluster("ES")]}
    )

    async def counted() -> bool:
        # Every agreement registration holds, this one and any an earlier test signed that is
        # still on its way (a count of at least one could be another's, this one coming later).
        signed = len((await scene.registration.get("/agreements")).json())
        async with httpx.AsyncClient(base_url=reporting) as client:
            return bool((await client.get("/reports/partnership")).json()["agreements"] == signed)

    await eventually(counted)
    async with httpx.AsyncClient(base_url=reporting) as client:
        by_event = (await client.get("/reports/partnership/by/event")).json()
        partnership = (await client.get("/reports/partnership")).json()
    busiest = max(by_event, key=lambda r: r["meeting_requests"])
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith(reporting) else route.abort(),
        )
        response = await page.goto(f"{reporting}/dashboard")
        assert response is not None and response.ok

        async def tile(name: str) -> int:
            return int(await page.locator(f".tile[data-key='{name}'] .n").inner_text())

        assert await tile("Meeting requests") == sum(r["meeting_requests"] for r in by_event)
        # both kinds of agreement, each under its own name
        assert await tile("Business agreements") == sum(r["agreements_signed"] for r in by_event)
        assert await tile("Partnership agreements") == partnership["agreements"]
        for heading in (
            "Meetings over time",
            "Who met whom (countries)",
            "Sectors",
            "Outcomes",
            "Target markets",
        ):
            assert await page.get_by_role("heading", name=heading).is_visible()
        assert await page.locator("svg.chart").count() >= 4
        assert await page.locator("table.matrix").is_visible()
        async with httpx.AsyncClient(base_url=reporting) as client:
            by_country = {r["group"]: r for r in (await client.get("/reports/partnership/by/country")).json()}
        if {"BG", "ES"} <= by_country.keys():
            cell = page.locator("table.matrix tr", has=page.locator("th", has_text="BG")).locator("td").first
            assert await cell.get_attribute("title") is not None
        await page.screenshot(path=output("dashboard.png"), full_page=True)
        # A person picks the busiest event and presses "Show".
        await page.select_option("#event", busiest["group"])
        await page.click("button[type=submit]")
        await page.wait_for_url(f"**/dashboard?event={busiest['group']}*")
        assert await tile("Meeting requests") == busiest["meeting_requests"]
        assert await tile("Participants") == busiest["participants"]
        await page.screenshot(path=output("dashboard-event.png"), full_page=True)
        # Its links lead somewhere: the exports answer.
        href = await page.locator("a", has_text="XLSX").first.get_attribute("href")
    async with httpx.AsyncClient(base_url=reporting) as client:
        assert (await client.get(f"/{href}")).status_code == 200
