"""Scoring profiles from matching's read model: an event's participants, a cluster's members.

Company documents (with their vectors) are read only where the matcher does not hold
the current version (`Matcher.kept_profile`): asking again reads small documents, not
profiles.

Each B2B event's roster (its participants with their companies' versions) is also kept in
memory (`Rosters`), so that a sign-up does not read the whole event again. Every change to
who is at an event, or to one of their companies, increments the event's `roster` counter
in the same transaction (`bump_roster`); a kept roster is used only at the counter's value
it was read at, or one step behind with the change that made the step. Two changes at once
write the same counter, so one of the two transactions runs again: the step is exact. The
counter's epoch is new whenever the event's document is (a rebuild), so no instance mistakes
an old roster for a new one.
"""

import dataclasses
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from c2f_matching.clusters import Cluster
from c2f_matching.matcher import Matcher
from c2f_matching.scoring import Profile
from c2f_matching.store import CLUSTERS, COMPANIES, EVENTS, PARTICIPANTS
from c2f_shared.events import ParticipantRegistered
from c2f_shared.service import UnitOfWork

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


RosterKey = tuple[str, int]  # the event's roster epoch and counter


@dataclass(frozen=True)
class Roster:
    key: RosterKey
    companies: dict[str, tuple[str, Any]]  # participant id -> (company id, company version or None)


class Rosters:
    """The rosters of the events signed up to most recently, in memory."""

    KEPT = 64

    def __init__(self) -> None:
        self._kept: OrderedDict[str, Roster] = OrderedDict()

    def get(self, event_id: str, key: RosterKey, uow: UnitOfWork | None = None) -> Roster | None:
        """The event's roster at `key`, if kept (or, in `uow`, made by an earlier message of it)."""
        made = uow.local.get((Rosters, event_id)) if uow is not None else None
        if made is not None and made.key == key:
            return made  # type: ignore[no-any-return]
        roster = self._kept.get(event_id)
        if roster is None or roster.key != key:
            return None
        self._kept.move_to_end(event_id)
        return roster

    def keep(self, event_id: str, roster: Roster) -> None:
        self._kept[event_id] = roster
        self._kept.move_to_end(event_id)
        while len(self._kept) > self.KEPT:
            self._kept.popitem(last=False)

    def keep_on_commit(self, uow: UnitOfWork, event_id: str, roster: Roster) -> None:
        """Keep `roster` once `uow` commits; until then the later messages of `uow` see it."""
        uow.local[(Rosters, event_id)] = roster
        uow.after_commit(lambda: self.keep(event_id, roster))

    def forget(self, event_id: str) -> None:
        self._kept.pop(event_id, None)

    def clear(self) -> None:
        self._kept.clear()


def new_roster_epoch() -> str:
    """What an event's document starts with ($setOnInsert), beside its counter."""
    return uuid.uuid4().hex


def roster_key(event: dict[str, Any]) -> RosterKey:
    return (str(event.get("roster_epoch", "")), int(event.get("roster", 0)))


async def bump_roster(db: Any, event_id: str) -> dict[str, Any]:
    """Who is at the event, or one of their companies, changed (in the caller's transaction).

    Written even before the event itself is known (a placeholder with only the counter, which
    readers take for an unknown event): so that a sign-up and the event's creation, or a company
    and the events it is at, handled at the same moment by lanes of different partitions, write
    the same document, and one of the two transactions runs again and sees the other. Without
    that each would commit without the other's change and neither would suggest the pair."""
    bumped: dict[str, Any] = await db[EVENTS].find_one_and_update(
        {"_id": event_id},
        {"$inc": {"roster": 1}, "$setOnInsert": {"roster_epoch": new_roster_epoch()}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    return bumped  # the event's document as it is now (one round trip, not two)


_STEPPED = "matching.stepped"  # UnitOfWork.local: event id -> its document after this unit of work's step


async def step_roster(uow: UnitOfWork, event_id: str) -> dict[str, Any]:
    """`bump_roster` for changes whose roster the unit of work builds in memory (`event_roster`
    with `changed`): once per event and unit of work, however many of its messages change
    the event (a batch of 50 sign-ups to 4 events: 4 round trips, not 50). One step can
    hold several changes: nobody sees it before the commit, and the roster this unit of
    work keeps at that step holds all of them."""
    stepped: dict[str, dict[str, Any]] = uow.local.setdefault(_STEPPED, {})
    if event_id not in stepped:
        stepped[event_id] = await bump_roster(uow.db, event_id)
    return stepped[event_id]


def changed_apart(uow: UnitOfWork, event_id: str) -> None:
    """The unit of work changed the event in a way its roster in memory does not follow (a
    withdrawal, an erasure, the event's own document): the next change steps again and
    builds the roster afresh."""
    uow.local.get(_STEPPED, {}).pop(event_id, None)
    uow.local.pop((Rosters, event_id), None)


def known_event(event: dict[str, Any] | None) -> bool:
    """Whether `event` is an event's document, not the placeholder `bump_roster` leaves."""
    return event is not None and "name" in event


async def event_roster(
    uow: UnitOfWork,
    matcher: Matcher,
    rosters: Rosters,
    event: dict[str, Any],
    changed: dict[str, str | None] | None = None,
) -> tuple[Roster, list[Profile]]:
    """The event's participants whose company is known, as scoring profiles, and the roster they
    come from (for the caller to keep once its transaction commits). `changed`: what made the
    counter's last step (participant id -> company id, None: gone), if the caller made it."""
    db = uow.db
    key = roster_key(event)
    roster = rosters.get(event["_id"], key, uow)
    base: Roster | None = None
    if changed is not None:
        if roster is not None and roster is uow.local.get((Rosters, event["_id"])):
            base = roster  # this unit of work's own step (`step_roster`): the change joins it
        elif roster is None:
            base = rosters.get(event["_id"], (key[0], key[1] - 1), uow)
    if base is not None and changed is not None:
        entries = dict(base.companies)
        versions = await _versions_of_batch(uow, matcher, [c for c in changed.values() if c is not None])
        for participant_id, company_id in changed.items():
            if company_id is None:
                entries.pop(participant_id, None)
            else:
                entries[participant_id] = (company_id, versions.get(company_id))
        roster = Roster(key, entries)
    if roster is None:
        participants = (
            await db[PARTICIPANTS]
            .find({"event_id": event["_id"], "company_id": {"$ne": None}}, {"company_id": 1})
            .to_list(None)
        )
        versions = await _versions(db, matcher, [p["company_id"] for p in participants])
        roster = Roster(
            key, {p["_id"]: (p["company_id"], versions.get(p["company_id"])) for p in participants}
        )
    known = {c: v for c, v in roster.companies.values() if v is not None}
    companies = await _company_profiles(db, matcher, known)
    profiles = [
        dataclasses.replace(companies[company_id], participant_id=participant_id)
        for participant_id, (company_id, _) in roster.companies.items()
        if company_id in companies
    ]
    return roster, profiles


async def _versions(db: Any, matcher: Matcher, company_ids: list[str]) -> dict[str, Any]:
    return {
        c["_id"]: matcher.version(c)
        async for c in db[COMPANIES].find({"_id": {"$in": list(set(company_ids))}}, VERSION_FIELDS)
    }


_VERSIONS = "matching.versions"  # UnitOfWork.local: company id -> its version (None: not known)


async def _versions_of_batch(uow: UnitOfWork, matcher: Matcher, company_ids: list[str]) -> dict[str, Any]:
    """`_versions`, read once per unit of work for the companies of all its sign-ups."""
    kept: dict[str, Any] = uow.local.setdefault(_VERSIONS, {})
    missing = [c for c in company_ids if c not in kept]
    if missing:
        ahead = {e.company_id for e in uow.batch if isinstance(e, ParticipantRegistered) and e.company_id}
        wanted = list({*missing, *(c for c in ahead if c not in kept)})
        found = await _versions(uow.db, matcher, wanted)
        kept.update({c: found.get(c) for c in wanted})
    return {c: kept[c] for c in company_ids if kept[c] is not None}


def forget_versions(uow: UnitOfWork, company_ids: list[str]) -> None:
    """The unit of work wrote these companies: their versions are read again."""
    kept: dict[str, Any] = uow.local.get(_VERSIONS, {})
    for company_id in company_ids:
        kept.pop(company_id, None)


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
