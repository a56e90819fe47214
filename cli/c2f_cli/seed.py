"""Seeding a partnership through registration's public HTTP API, from data files.

The files (see demo/README.md) name things by keys; seeding turns keys into the
ids registration gives. Registration is idempotent, so seeding twice creates
nothing new.
"""

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
ALREADY_REGISTERED = re.compile(r"already registered for this event as participant ([0-9a-f-]{36})")


class SeedError(RuntimeError):
    pass


@dataclass
class Partnership:
    clusters: list[dict[str, Any]]
    agreements: list[dict[str, Any]]
    companies: list[dict[str, Any]]  # each with its cluster's key under "cluster"
    events: list[dict[str, Any]]

    @classmethod
    def load(cls, folder: Path) -> "Partnership":
        try:
            clusters = json.loads((folder / "clusters.json").read_text(encoding="utf-8"))
            companies = []
            for cluster in clusters:
                path = folder / "members" / f"{cluster['key']}.json"
                if path.exists():
                    for company in json.loads(path.read_text(encoding="utf-8")):
                        companies.append({**company, "cluster": cluster["key"]})
            events = json.loads((folder / "events.json").read_text(encoding="utf-8"))
            agreements_file = folder / "agreements.json"
            agreements = (
                json.loads(agreements_file.read_text(encoding="utf-8")) if agreements_file.exists() else []
            )
        except (OSError, json.JSONDecodeError, KeyError) as error:
            raise SeedError(f"cannot read the partnership in {folder}: {error}") from error
        return cls(clusters=clusters, agreements=agreements, companies=companies, events=events)

    def steps(self) -> int:
        events = sum(1 + len(e["participants"]) for e in self.events)
        return len(self.clusters) + len(self.agreements) + len(self.companies) + events


@dataclass
class SeedResult:
    created: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)
    ids: dict[str, str] = field(default_factory=dict)


def _without(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys}


def seed(client: httpx.Client, partnership: Partnership, result: SeedResult) -> Iterator[str]:
    """Register everything, yielding a label after each step (for a progress bar)."""

    def post(kind: str, path: str, body: dict[str, Any]) -> str:
        response = client.post(path, json=body)
        if response.status_code == 409 and kind == "participants":
            # A participant registers once; the answer names the earlier registration.
            known = ALREADY_REGISTERED.search(response.json().get("detail", ""))
            if known:
                result.existing[kind] += 1
                return known.group(1)
        if response.status_code not in (200, 201):
            raise SeedError(f"POST {path} answered {response.status_code}: {response.text}")
        (result.created if response.status_code == 201 else result.existing)[kind] += 1
        item_id: str = response.json()["id"]
        return item_id

    for cluster in partnership.clusters:
        result.ids[cluster["key"]] = post("clusters", "/clusters", _without(cluster, "key"))
        yield f"cluster {cluster['short_name']}"
    for agreement in partnership.agreements:
        body = _without(agreement, "key", "clusters")
        body["cluster_ids"] = [result.ids[key] for key in agreement["clusters"]]
        post("agreements", "/agreements", body)
        yield f"agreement {agreement['title']}"
    companies = {c["key"]: c for c in partnership.companies}
    for company in partnership.companies:
        body = _without(company, "key", "cluster", "attendee", "consent_share_contact")
        body["cluster_id"] = result.ids[company["cluster"]]
        result.ids[company["key"]] = post("companies", "/companies", body)
        yield f"company {company['legal_name']}"
    for event in partnership.events:
        body = _without(event, "key", "host_cluster", "participants")
        body["host_cluster_id"] = result.ids[event["host_cluster"]]
        event_id = result.ids[event["key"]] = post("events", "/events", body)
        yield f"event {event['name']}"
        for key in event["participants"]:
            if key not in companies:
                raise SeedError(f"event {event['key']}: unknown company key {key!r}")
            company = companies[key]
            post(
                "participants",
                f"/events/{event_id}/participants",
                {
                    "company_id": result.ids[key],
                    "attendee": company["attendee"],
                    "consent_share_contact": company.get("consent_share_contact", False),
                },
            )
            yield f"participant {company['legal_name']}"
