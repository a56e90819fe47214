"""Scoring profiles from matching's read model: an event's participants, a cluster's members.

Company documents (with their vectors) are read only where the matcher does not hold
the current version (`Matcher.kept_profile`): asking again reads small documents, not
profiles.
"""

import dataclasses
from typing import Any

from c2f_matching.clusters import Cluster
from c2f_matching.matcher import Matcher
from c2f_matching.scoring import Profile
from c2f_matching.store import CLUSTERS, COMPANIES, PARTICIPANTS

VERSION_FIELDS = {"revision": 1, "updated_at": 1}


async def _company_profiles(db: Any, matcher: Matcher, versions: dict[str, Any]) -> dict[str, Profile]:
    companies: dict[str, Profile] = {}
    for company_id, version in versions.items():
        kept = matcher.kept_profile(company_id, version)
        if kept is not None:
            companies[company_id] = kept
    changed = [company_id for company_id in versions if company_id not in companies]
    if changed:
        async for company in db[COMPANIES].find({"_id": {"$in": changed}}):
            companies[company["_id"]] = matcher.keep_profile(company)
    return companies


async def event_profiles(db: Any, matcher: Matcher, event_id: str) -> list[Profile]:
    """Every participant of the event whose company is known, as scoring profiles."""
    participants = (
        await db[PARTICIPANTS]
        .find({"event_id": event_id, "company_id": {"$ne": None}}, {"company_id": 1})
        .to_list(None)
    )
    company_ids = list({p["company_id"] for p in participants})
    versions = {
        c["_id"]: matcher.version(c)
        async for c in db[COMPANIES].find({"_id": {"$in": company_ids}}, VERSION_FIELDS)
    }
    companies = await _company_profiles(db, matcher, versions)
    return [
        dataclasses.replace(companies[p["company_id"]], participant_id=p["_id"])
        for p in participants
        if p["company_id"] in companies
    ]


async def clusters(db: Any, matcher: Matcher, cluster_ids: list[str] | None = None) -> list[Cluster]:
    """Clusters (all when `cluster_ids` is None) with their members' profiles."""
    query: dict[str, Any] = {} if cluster_ids is None else {"_id": {"$in": cluster_ids}}
    known = {c["_id"]: c async for c in db[CLUSTERS].find(query)}
    members: dict[str, list[str]] = {cluster_id: [] for cluster_id in known}
    versions: dict[str, Any] = {}
    async for c in db[COMPANIES].find(
        {"cluster_id": {"$in": list(known)}}, {**VERSION_FIELDS, "cluster_id": 1}
    ):
        members[c["cluster_id"]].append(c["_id"])
        versions[c["_id"]] = matcher.version(c)
    profiles = await _company_profiles(db, matcher, versions)
    return [
        Cluster(
            cluster_id=cluster_id,
            name=doc["name"],
            country=doc["country"],
            members=tuple(profiles[m] for m in sorted(members[cluster_id]) if m in profiles),
        )
        for cluster_id, doc in known.items()
    ]
