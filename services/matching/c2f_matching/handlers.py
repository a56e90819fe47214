"""Matching's consumers: keep the read model of registration's facts (profiles with their
text vectors, clusters, events, participants) and suggest each participant its best partners
at its event when a participant, a company or an event becomes known or changes."""

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pymongo import UpdateOne

from c2f_matching import meetings
from c2f_matching.matcher import Matcher
from c2f_matching.profiles import (
    Rosters,
    bump_roster,
    changed_apart,
    event_roster,
    forget_versions,
    known_event,
    new_roster_epoch,
    step_roster,
)
from c2f_matching.scoring import Profile, top_pairs
from c2f_matching.store import (
    CLUSTERS,
    COMPANIES,
    COMPANY_EVENTS,
    ERASED,
    EVENTS,
    PARTICIPANTS,
    SUGGESTIONS,
    suggestion_id,
)
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    EventCreated,
    EventUpdated,
    MatchParty,
    MatchSuggested,
    ParticipantRegistered,
    ParticipantUpdated,
    ParticipantWithdrawn,
)
from c2f_shared.service import Handlers, UnitOfWork, tracing

# What a rebuild starts afresh; suggestions made and meetings (matching's own facts) stay.
READ_MODEL = (COMPANIES, CLUSTERS, PARTICIPANTS, EVENTS, COMPANY_EVENTS)

# Each participant is suggested at most its TOP_K best partners, each pair once.
TOP_K = 5


def make_handlers(matcher: Matcher, rosters: Rosters) -> Handlers:
    """What matching takes from registration's topics, each with its handler. `rosters`: the
    events' rosters kept in memory (emptied by a rebuild)."""

    async def suggest_at(
        uow: UnitOfWork, event_id: str, changed: dict[str, str | None], for_whom: list[dict[str, Any]]
    ) -> None:
        """Who is at the event changed (`changed`, already written): count the change, then
        suggest partners to `for_whom`."""
        event = await step_roster(uow, event_id)
        if not known_event(event) or event.get("kind") != "b2b":
            return  # companies meet one to one at B2B events (delegations choose at C2C; webinars: none)
        roster, profiles = await event_roster(uow, matcher, rosters, event, changed)
        rosters.keep_on_commit(uow, event_id, roster)
        for participant in for_whom:
            await suggest_for(uow, event, profiles, participant)

    async def company(event: CompanyRegistered | CompanyUpdated, envelope: Envelope, uow: UnitOfWork) -> None:
        revisions = await _batch_companies(uow, event.company_id)
        if revisions.get(event.company_id, 0) >= event.revision:
            return  # an older revision arriving late
        # Matching needs what a company offers and seeks, not who its people are.
        doc = event.model_dump(mode="json", exclude={"contacts"})
        doc["vectors"] = await matcher.encode(doc["offers"], doc["needs"])
        stored = _upsert_later(uow, COMPANIES, event.company_id, doc)
        revisions[event.company_id] = event.revision
        forget_versions(uow, [event.company_id])

        # Its sign-ups need the profile next: kept at the version just written.
        def keep() -> None:
            matcher.keep_profile({**stored, "_id": event.company_id})

        uow.after_commit(keep)
        # Written by sign-ups of the company too: see `participant`.
        uow.db[COMPANY_EVENTS].write_later(
            UpdateOne({"_id": event.company_id}, {"$set": {"revision": event.revision}}, upsert=True)
        )
        by_event: dict[str, list[dict[str, Any]]] = {}
        for participant in await _batch_participants(uow, event.company_id):
            by_event.setdefault(participant["event_id"], []).append(participant)
        for event_id, participants in by_event.items():
            await suggest_at(uow, event_id, {p["_id"]: event.company_id for p in participants}, participants)

    async def erased(event: CompanyErased, envelope: Envelope, uow: UnitOfWork) -> None:
        for event_id in await _forget_company(uow, event.company_id):
            await bump_roster(uow.db, event_id)
            changed_apart(uow, event_id)
            uow.after_commit(lambda event_id=event_id: rosters.forget(event_id))  # type: ignore[misc]
        matcher.forget_profile(event.company_id)

    async def participant(event: ParticipantRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        doc = {
            "event_id": event.event_id,
            "company_id": event.company_id,  # None for a C2C delegation
            "cluster_id": event.cluster_id,
            "token_hash": event.access_token_hash,
            "availability": event.availability,
            "max_meetings": event.max_meetings,
            "languages": event.languages,
            # Shown to the people it meets only with the attendee's consent.
            "attendee": event.attendee.name if event.consent_share_contact else None,
        }
        _upsert_later(uow, PARTICIPANTS, event.participant_id, doc)
        if event.company_id is not None:
            # The company's handler writes this document too: a sign-up and its company's
            # registration handled at the same moment cannot both miss each other.
            uow.db[COMPANY_EVENTS].write_later(
                UpdateOne({"_id": event.company_id}, {"$addToSet": {"events": event.event_id}}, upsert=True)
            )
            me = {"_id": event.participant_id, **doc}
            await suggest_at(uow, event.event_id, {event.participant_id: event.company_id}, [me])

    async def withdrawn(event: ParticipantWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
        await meetings.withdraw(uow, event.participant_id)
        await uow.db[PARTICIPANTS].delete_one({"_id": event.participant_id})
        await bump_roster(uow.db, event.event_id)
        changed_apart(uow, event.event_id)
        uow.after_commit(lambda: rosters.forget(event.event_id))

    async def event_changed(event: EventCreated | EventUpdated, envelope: Envelope, uow: UnitOfWork) -> None:
        changed_apart(uow, event.event_id)  # later sign-ups of the batch read the event as it is now
        await uow.db[EVENTS].update_one(
            {"_id": event.event_id},
            {
                "$set": {
                    **event.model_dump(mode="json", include=EVENT_FIELDS),
                    "updated_at": datetime.now(UTC),
                },
                "$setOnInsert": {"roster_epoch": new_roster_epoch(), "roster": 0},
            },
            upsert=True,
        )
        stored = await uow.db[EVENTS].find_one({"_id": event.event_id})
        if stored is None or stored.get("kind") != "b2b":
            return
        roster, profiles = await event_roster(uow, matcher, rosters, stored)
        rosters.keep_on_commit(uow, event.event_id, roster)
        async for participant in uow.db[PARTICIPANTS].find(
            {"event_id": event.event_id, "company_id": {"$ne": None}}
        ):
            await suggest_for(uow, stored, profiles, participant)

    return {
        ClusterRegistered: _cluster,
        CompanyRegistered: company,
        CompanyUpdated: company,
        CompanyErased: erased,
        EventCreated: event_changed,
        EventUpdated: event_changed,
        ParticipantRegistered: participant,
        ParticipantUpdated: _participant_updated,
        ParticipantWithdrawn: withdrawn,
    }


async def _cluster(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    await _upsert(uow, CLUSTERS, event.cluster_id, {"name": event.name, "country": event.country})


async def _participant_updated(event: ParticipantUpdated, envelope: Envelope, uow: UnitOfWork) -> None:
    changes = {"availability": event.availability, "max_meetings": event.max_meetings}
    await _upsert(uow, PARTICIPANTS, event.participant_id, {**changes, "languages": event.languages})
    await meetings.schedule_is_stale(uow, event.event_id)


EVENT_FIELDS = {
    "name",
    "kind",
    "mode",
    "venue",
    "city",
    "country",
    "venue_timezone",
    "starts_at",
    "ends_at",
    "meetings",
    "slots",
    "link",
}


async def _upsert(uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]) -> None:
    """Set `doc`'s fields and the time."""
    await uow.db[collection].update_one(
        {"_id": doc_id}, {"$set": {**doc, "updated_at": _stored_now()}}, upsert=True
    )


def _upsert_later(uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """`_upsert`, sent with the unit of work's other writes to the collection."""
    stored = {**doc, "updated_at": _stored_now()}
    uow.db[collection].write_later(UpdateOne({"_id": doc_id}, {"$set": stored}, upsert=True))
    return stored


def _stored_now() -> datetime:
    """Now, as the database stores it (to the millisecond), so that what is kept in memory
    compares equal with what is read back."""
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


_REVISIONS = "matching.revisions"  # UnitOfWork.local: company id -> revision stored (0: none)
_PEOPLE = "matching.people"  # UnitOfWork.local: company id -> its participants


def _companies_in(uow: UnitOfWork, company_id: str) -> list[str]:
    named = {e.company_id for e in uow.batch if isinstance(e, CompanyRegistered | CompanyUpdated)}
    return list({company_id, *named})


async def _batch_companies(uow: UnitOfWork, company_id: str) -> dict[str, int]:
    """The stored revision of every company the unit of work's messages name, read at once
    (the handlers keep it up to date as they write)."""
    revisions: dict[str, int] = uow.local.setdefault(_REVISIONS, {})
    if company_id not in revisions:
        ids = [i for i in _companies_in(uow, company_id) if i not in revisions]
        found = {
            c["_id"]: c.get("revision", 0)
            async for c in uow.db[COMPANIES].find({"_id": {"$in": ids}}, {"revision": 1})
        }
        revisions.update({i: int(found.get(i, 0)) for i in ids})
    return revisions


async def _batch_participants(uow: UnitOfWork, company_id: str) -> list[dict[str, Any]]:
    """The company's participants, read at once for every company the unit of work's messages
    name (a batch of companies writes none)."""
    people: dict[str, list[dict[str, Any]]] = uow.local.setdefault(_PEOPLE, {})
    if company_id not in people:
        ids = [i for i in _companies_in(uow, company_id) if i not in people]
        people.update({i: [] for i in ids})
        async for participant in uow.db[PARTICIPANTS].find({"company_id": {"$in": ids}}):
            people[participant["company_id"]].append(participant)
    return people[company_id]


async def suggest_for(
    uow: UnitOfWork, event: dict[str, Any], profiles: list[Profile], participant: dict[str, Any]
) -> None:
    """Publish `participant`'s best partners at `event` (whose participants are `profiles`)
    that were not suggested before."""
    me = next((p for p in profiles if p.participant_id == participant["_id"]), None)
    if me is None:
        return  # its company's profile has not reached us yet
    others = [p for p in profiles if p.participant_id != me.participant_id]
    suggestions = [
        MatchSuggested(
            suggestion_id=suggestion_id(event["_id"], me.participant_id, other.participant_id),
            event_id=event["_id"],
            event_name=event["name"],
            parties=(_party(me), _party(other)),
            reasons=scored.reasons,
            score=scored.score,
            signals=scored.signals,
            score_parts=scored.parts,
        )
        for other, scored in top_pairs(me, others, TOP_K)
    ]
    if not suggestions:
        return
    gathered: list[_Suggested] | None = uow.local.get(_SUGGESTED)
    if gathered is None:
        gathered = uow.local[_SUGGESTED] = []
        uow.before_commit(lambda: _store_suggestions(uow, gathered))
    # Each is published as following from the message being handled, in its trace.
    made_in = (uow.correlation_id, tracing.carrier())
    gathered += [_Suggested(s, *made_in) for s in suggestions]


_SUGGESTED = "matching.suggested"  # UnitOfWork.local: the suggestions its handlers made


class _Suggested(NamedTuple):
    suggestion: MatchSuggested
    correlation_id: str
    trace: tracing.Carrier


async def _store_suggestions(uow: UnitOfWork, gathered: list[_Suggested]) -> None:
    """Store what a unit of work's handlers suggested, in one write, and publish what was not
    suggested before (a pair suggested twice in it is stored, and published, once)."""
    created_at = datetime.now(UTC)
    made = {g.suggestion.suggestion_id: g for g in reversed(gathered)}  # of a pair, the first
    stored = await uow.db[SUGGESTIONS].insert_absent(
        [
            {
                "_id": g.suggestion.suggestion_id,
                **g.suggestion.model_dump(mode="json", exclude={"suggestion_id"}),
                "participant_ids": [p.participant_id for p in g.suggestion.parties],
                "created_at": created_at,
            }
            for g in gathered
        ]
    )
    for doc in stored:  # only what was not suggested before is news, in the order made
        news = made[doc["_id"]]
        with tracing.continued(news.trace):
            uow.emit(news.suggestion, event_id=doc["_id"], correlation_id=news.correlation_id)


async def _forget_company(uow: UnitOfWork, company_id: str) -> set[str]:
    """Erasure: the company, its participants and every suggestion and meeting naming them go
    (the other parties hear that their meetings are cancelled). Returns the events they were at."""
    participants = await uow.db[PARTICIPANTS].find({"company_id": company_id}, {"event_id": 1}).to_list(None)
    participant_ids = [p["_id"] for p in participants]
    await uow.db[SUGGESTIONS].delete_many({"participant_ids": {"$in": participant_ids}})
    await meetings.forget(uow, participant_ids)
    # What was published about them (suggestions, meeting facts) leaves the outbox too.
    named = "|".join(re.escape(i) for i in [company_id, *participant_ids])
    await uow.forget_published({"payload": {"$regex": named}})
    await uow.db[PARTICIPANTS].delete_many({"company_id": company_id})
    await uow.db[COMPANIES].delete_one({"_id": company_id})
    await uow.db[COMPANY_EVENTS].delete_one({"_id": company_id})
    await uow.db[ERASED].update_one(
        {"_id": company_id}, {"$set": {"erased_at": datetime.now(UTC)}}, upsert=True
    )
    return {p["event_id"] for p in participants}


def _party(profile: Any) -> MatchParty:
    return MatchParty(
        participant_id=profile.participant_id,
        company_id=profile.company_id,
        company_name=profile.company_name,
        country=profile.country,
    )


async def refresh_vectors(db: Any, matcher: Matcher) -> int:
    """Encode again the companies stored with other vectors than the matcher's (another model,
    or before language-neutral vectors); how many."""
    renewed = 0
    async for company in db[COMPANIES].find({"vectors.model": {"$ne": matcher.vectors_id}}):
        vectors = await matcher.encode(company["offers"], company["needs"])
        await db[COMPANIES].update_one(
            {"_id": company["_id"]}, {"$set": {"vectors": vectors, "updated_at": datetime.now(UTC)}}
        )
        renewed += 1
    return renewed


async def ensure_indexes(db: Any) -> None:
    await meetings.ensure_indexes(db)
    await db[COMPANIES].create_index("updated_at")
    await db[COMPANIES].create_index("cluster_id")
    await db[ERASED].create_index("erased_at")
    await db[PARTICIPANTS].create_index("event_id")
    await db[PARTICIPANTS].create_index("company_id")
    await db[SUGGESTIONS].create_index("event_id")
    await db[SUGGESTIONS].create_index("participant_ids")
