"""Two reports built from the projections: one event in detail (registrations over time, who
met whom, slots and tables used, requests left unanswered, how much of what was accepted got
scheduled) and the inputs of the internationalisation strategy (interest in each target
market by sector and cluster, the obstacles named, existing connections, and the matches and
agreements that reach each market)."""

from collections import Counter, defaultdict
from typing import Any

from c2f_reporting.store import (
    CLUSTERS,
    COMPANIES,
    EVENTS,
    MATCH_SUGGESTIONS,
    MEETINGS,
    OUTCOMES,
    PARTICIPANTS,
)


async def event_report(db: Any, event_id: str) -> dict[str, Any] | None:
    event = await db[EVENTS].find_one({"_id": event_id})
    if event is None:
        return None
    people = await db[PARTICIPANTS].find({"event_id": event_id}).to_list(None)
    registered = [p for p in people if p.get("status") == "registered"]
    by_day = Counter(str(p.get("occurred_at", ""))[:10] for p in registered)
    running, over_time = 0, []
    for day in sorted(by_day):
        running += by_day[day]
        over_time.append({"date": day, "registered": by_day[day], "total": running})
    companies = {c["_id"]: c async for c in db[COMPANIES].find({}, {"country": 1, "cluster_id": 1})}
    clusters = {c["_id"]: c.get("name", c["_id"]) async for c in db[CLUSTERS].find({}, {"name": 1})}
    whose = {p["_id"]: p for p in people}
    meetings = await db[MEETINGS].find({"event_id": event_id}).to_list(None)
    accepted = [m for m in meetings if m.get("status") == "accepted"]
    scheduled = [m for m in accepted if m.get("scheduled")]

    def matrix(key: str) -> dict[str, dict[str, int]]:
        cells: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for m in accepted:
            found = []
            for pid in m.get("parties", []):
                person = whose.get(pid, {})
                company = companies.get(person.get("company_id") or "", {})
                value = (
                    company.get("country") if key == "country" else clusters.get(person.get("cluster_id", ""))
                )
                if value:
                    found.append(value)
            found = sorted(set(found))
            if len(found) == 1:
                cells[found[0]][found[0]] += 1
            for i, a in enumerate(found):
                for b in found[i + 1 :]:
                    cells[a][b] += 1
                    cells[b][a] += 1
        return {a: dict(row) for a, row in sorted(cells.items())}

    slots = [s["id"] for s in event.get("slots", [])]
    tables = int((event.get("meetings") or {}).get("tables") or 0)
    per_slot = Counter(m.get("slot_id") for m in scheduled)
    return {
        "event_id": event_id,
        "name": event.get("name"),
        "kind": event.get("kind"),
        "registrations": len(registered),
        "withdrawn": len(people) - len(registered),
        "registrations_over_time": over_time,
        "met_by_country": matrix("country"),
        "met_by_cluster": matrix("cluster"),
        "meeting_requests": len(meetings),
        "unanswered_requests": sum(1 for m in meetings if m.get("status") == "requested"),
        "declined": sum(1 for m in meetings if m.get("status") == "declined"),
        "accepted": len(accepted),
        "scheduled": len(scheduled),
        "schedule_quality": round(len(scheduled) / len(accepted), 3) if accepted else None,
        "slots": [{"slot_id": s, "meetings": per_slot.get(s, 0), "tables": tables} for s in slots],
        "table_utilisation": round(len(scheduled) / (len(slots) * tables), 3) if slots and tables else None,
    }


async def internationalisation(db: Any, market: str | None = None) -> list[dict[str, Any]]:
    companies = await db[COMPANIES].find({}).to_list(None)
    clusters = {c["_id"]: c.get("name", c["_id"]) async for c in db[CLUSTERS].find({}, {"name": 1})}
    by_company_people: dict[str, list[str]] = defaultdict(list)
    async for p in db[PARTICIPANTS].find({}, {"company_id": 1}):
        if p.get("company_id"):
            by_company_people[p["company_id"]].append(p["_id"])
    agreements: dict[str, int] = Counter()
    async for o in db[OUTCOMES].find({"follow_up": "agreement_signed"}, {"meeting_id": 1}):
        agreements[o["meeting_id"]] += 1
    meetings = await db[MEETINGS].find({"status": "accepted"}, {"parties": 1}).to_list(None)
    suggestions = await db[MATCH_SUGGESTIONS].find({}, {"parties": 1}).to_list(None)
    markets = sorted({m for c in companies for m in c.get("target_markets", [])})
    rows = []
    for code in [market] if market else markets:
        interested = [c for c in companies if code in c.get("target_markets", [])]
        ids = {c["_id"] for c in interested}
        people = {p for cid in ids for p in by_company_people.get(cid, [])}
        obstacles = Counter(o.get("kind") for c in interested for o in c.get("obstacles", []))
        obstacles_by_sector: dict[str, Counter[str]] = defaultdict(Counter)
        for c in interested:
            for sector in c.get("sectors", []):
                obstacles_by_sector[sector].update(o.get("kind") for o in c.get("obstacles", []))
        connected = [
            c["legal_name"]
            for c in companies
            if any(k.get("market") == code for k in c.get("connections", []))
        ]
        reaching = [m for m in meetings if people.intersection(m.get("parties", []))]
        rows.append(
            {
                "market": code,
                "companies_interested": len(interested),
                "by_sector": dict(Counter(s for c in interested for s in c.get("sectors", [])).most_common()),
                "by_cluster": dict(
                    Counter(clusters.get(c.get("cluster_id"), "?") for c in interested).most_common()
                ),
                "obstacles": dict(obstacles.most_common()),
                "obstacles_by_sector": {
                    s: dict(n.most_common(3)) for s, n in sorted(obstacles_by_sector.items())
                },
                "companies_already_connected": connected,
                "match_suggestions": sum(
                    1
                    for s in suggestions
                    if ids.intersection(p.get("company_id") for p in s.get("parties", []))
                ),
                "meetings_accepted": len(reaching),
                "agreements_signed": sum(1 for m in reaching if agreements.get(m["_id"])),
            }
        )
    return rows
