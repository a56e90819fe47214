"""The partnership's numbers broken down by cluster, country, sector, event or month, computed
from reporting's projections. A meeting counts for every group one of its parties belongs to
(a Bulgarian–Spanish meeting counts for Bulgaria and for Spain)."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from c2f_reporting.store import CLUSTERS, COMPANIES, EVENTS, MEETINGS, OUTCOMES, PARTICIPANTS

DIMENSIONS = ("cluster", "country", "sector", "event", "month")


@dataclass
class Row:
    group: str
    label: str
    companies: set[str] = field(default_factory=set)
    participants: set[str] = field(default_factory=set)
    meeting_requests: set[str] = field(default_factory=set)
    meetings_accepted: set[str] = field(default_factory=set)
    meetings_scheduled: set[str] = field(default_factory=set)
    meetings_held: set[str] = field(default_factory=set)
    no_shows: set[str] = field(default_factory=set)
    further_contact: set[str] = field(default_factory=set)
    offers_sent: set[str] = field(default_factory=set)
    agreements_signed: set[str] = field(default_factory=set)
    cross_border: set[str] = field(default_factory=set)
    cross_sector: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, Any]:
        accepted = len(self.meetings_accepted)
        return {
            "group": self.group,
            "label": self.label,
            **{name: len(getattr(self, name)) for name in COUNTED},
            "cross_border_share": round(len(self.cross_border) / accepted, 3) if accepted else None,
            "cross_sector_share": round(len(self.cross_sector) / accepted, 3) if accepted else None,
        }


COUNTED = (
    "companies",
    "participants",
    "meeting_requests",
    "meetings_accepted",
    "meetings_scheduled",
    "meetings_held",
    "no_shows",
    "further_contact",
    "offers_sent",
    "agreements_signed",
)
COLUMNS = ("group", "label", *COUNTED, "cross_border_share", "cross_sector_share")


async def rows(
    db: Any, by: str, event: str | None = None, cluster: str | None = None
) -> list[dict[str, Any]]:
    """One row per group; `event` and `cluster` narrow what is counted (a meeting stays in if
    one of its parties belongs to the cluster)."""
    clusters = {c["_id"]: c async for c in db[CLUSTERS].find({}, {"name": 1, "country": 1})}
    companies = {
        c["_id"]: c
        async for c in db[COMPANIES].find({}, {"cluster_id": 1, "country": 1, "sectors": 1, "legal_name": 1})
    }
    events = {e["_id"]: e async for e in db[EVENTS].find({}, {"name": 1, "starts_at": 1})}
    people = {
        p["_id"]: p
        async for p in db[PARTICIPANTS].find(
            {"status": "registered"}, {"company_id": 1, "cluster_id": 1, "event_id": 1}
        )
    }
    all_people, all_companies = people, companies
    if event:
        people = {k: p for k, p in people.items() if p.get("event_id") == event}
    if cluster:
        companies = {k: c for k, c in companies.items() if c.get("cluster_id") == cluster}
        people = {k: p for k, p in people.items() if p.get("cluster_id") == cluster}
    outcomes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async for o in db[OUTCOMES].find({}):
        outcomes[o["meeting_id"]].append(o)

    def groups_of_company(
        company_id: str | None, cluster_id: str | None, event_id: str | None
    ) -> Iterable[tuple[str, str]]:
        company = companies.get(company_id or "", {})
        cluster = company.get("cluster_id") or cluster_id
        if by == "cluster" and cluster:
            yield cluster, clusters.get(cluster, {}).get("name", cluster)
        elif by == "country":
            country = company.get("country") or clusters.get(cluster or "", {}).get("country")
            if country:
                yield country, country
        elif by == "sector":
            for sector in company.get("sectors", []):
                yield sector, sector.replace("_", " ")
        elif by == "event" and event_id:
            yield event_id, events.get(event_id, {}).get("name", event_id)
        elif by == "month" and event_id and events.get(event_id, {}).get("starts_at"):
            month = str(events[event_id]["starts_at"])[:7]
            yield month, month

    table: dict[str, Row] = {}

    def row(key: str, label: str) -> Row:
        return table.setdefault(key, Row(key, label))

    for cid in companies:
        if by in ("cluster", "country", "sector"):
            for key, label in groups_of_company(cid, None, None):
                row(key, label).companies.add(cid)
    for pid, person in people.items():
        for key, label in groups_of_company(
            person.get("company_id"), person.get("cluster_id"), person.get("event_id")
        ):
            row(key, label).participants.add(pid)
            if person.get("company_id"):
                row(key, label).companies.add(person["company_id"])
    async for meeting in db[MEETINGS].find({"event_id": event} if event else {}):
        mid = meeting["_id"]
        if cluster and not any(p in people for p in meeting.get("parties", [])):
            continue
        parties = [all_people.get(p, {}) for p in meeting.get("parties", [])]
        countries = {all_companies.get(p.get("company_id") or "", {}).get("country") for p in parties} - {
            None
        }
        sectors = [set(all_companies.get(p.get("company_id") or "", {}).get("sectors", [])) for p in parties]
        accepted = meeting.get("status") == "accepted"
        told = outcomes.get(mid, [])
        held = any(o.get("held") for o in told)
        keys = {
            k
            for p in parties
            for k in groups_of_company(p.get("company_id"), p.get("cluster_id"), meeting.get("event_id"))
        }
        for key, label in keys:
            r = row(key, label)
            r.meeting_requests.add(mid)
            if accepted:
                r.meetings_accepted.add(mid)
                if len(countries) > 1:
                    r.cross_border.add(mid)
                if len(sectors) > 1 and not set.intersection(*sectors):
                    r.cross_sector.add(mid)
            if accepted and meeting.get("scheduled"):
                r.meetings_scheduled.add(mid)
            if held:
                r.meetings_held.add(mid)
            elif told:
                r.no_shows.add(mid)
            follow = {o.get("follow_up") for o in told}
            if "further_contact" in follow:
                r.further_contact.add(mid)
            if "offer_sent" in follow:
                r.offers_sent.add(mid)
            if "agreement_signed" in follow:
                r.agreements_signed.add(mid)
    return [r.counts() for r in sorted(table.values(), key=lambda r: r.label)]


async def country_matrix(db: Any, event: str | None = None) -> tuple[list[str], dict[tuple[str, str], int]]:
    """Accepted meetings between the countries of their parties (each pair once, both ways)."""
    countries = {c["_id"]: c.get("country") async for c in db[COMPANIES].find({}, {"country": 1})}
    people = {
        p["_id"]: countries.get(p.get("company_id"))
        async for p in db[PARTICIPANTS].find({}, {"company_id": 1})
    }
    cells: dict[tuple[str, str], int] = defaultdict(int)
    query: dict[str, Any] = {"status": "accepted", **({"event_id": event} if event else {})}
    async for meeting in db[MEETINGS].find(query):
        found = sorted({c for c in (people.get(p) for p in meeting.get("parties", [])) if c})
        if len(found) == 1:
            cells[(found[0], found[0])] += 1  # a meeting within one country
        for i, a in enumerate(found):
            for b in found[i + 1 :]:
                cells[(a, b)] += 1
                cells[(b, a)] += 1
    names = sorted({a for a, _ in cells})
    return names, dict(cells)
