"""Notifications' consumers: keep what messages need (recipients, events, names, meetings)
and queue one message per fact, kind and person (`outgoing.queue`), or a timer for a message
that comes later (digests, reminders, nudges, outcome requests). A redelivered event queues
nothing new: a queue entry's id is its dedupe key.
"""

import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pymongo import UpdateOne

from c2f_notifications.config import Settings
from c2f_notifications.outgoing import cancel_timers, queue, timer
from c2f_notifications.store import (
    CLUSTERS,
    COMPANIES,
    DIGEST_ITEMS,
    ERASURES,
    EVENTS,
    MEETINGS,
    OUTGOING,
    RECIPIENTS,
    TIMERS,
)
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    EventCreated,
    EventUpdated,
    MatchSuggested,
    MeetingAccepted,
    MeetingCancelled,
    MeetingDeclined,
    MeetingRequested,
    MeetingScheduled,
    MeetingUnscheduled,
    ParticipantRegistered,
    ParticipantWithdrawn,
    SchedulePublished,
)
from c2f_shared.service import Handlers, UnitOfWork
from c2f_shared.service.unit_of_work import existing
from c2f_shared.times import now, utc
from c2f_shared.vocabulary import Consent


class _Facts:
    """The handlers, with what they need: the settings, and the delivery loop to wake."""

    def __init__(self, settings: Settings, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.wake = wake

    def tell(
        self, uow: UnitOfWork, envelope: Envelope
    ) -> Callable[[str, str, str, dict[str, Any]], Awaitable[None]]:
        """Queue a message about the event being handled, waking delivery once it commits."""

        async def tell(kind: str, about: str, recipient: str, data: dict[str, Any]) -> None:
            if await queue(uow, kind, about, recipient, data, envelope.correlation_id):
                uow.after_commit(self.wake)

        return tell

    async def participant_registered(
        self, event: ParticipantRegistered, envelope: Envelope, uow: UnitOfWork
    ) -> None:
        fields = {
            **event.attendee.model_dump(),
            "consent_share_contact": event.consent_share_contact,
            "event_id": event.event_id,
            "company_id": event.company_id,
            "cluster_id": event.cluster_id,
            "token_hash": event.access_token_hash,
            "status": "registered",
        }
        # Written with the batch's other sign-ups, in one statement (before anything reads
        # recipients): one findAndModify each cost about 2 ms of the database per mail.
        _set_later(uow, RECIPIENTS, event.participant_id, fields)
        # What `queue` reads of it (a confirmation is essential: its preferences do not matter).
        recipient = {"_id": event.participant_id, **fields}
        about = {"event_id": event.event_id}
        kind = "registration_confirmed"
        if await queue(
            uow, kind, event.participant_id, event.participant_id, about, envelope.correlation_id, recipient
        ):
            uow.after_commit(self.wake)

    async def event_changed(
        self, event: EventCreated | EventUpdated, envelope: Envelope, uow: UnitOfWork
    ) -> None:
        before = await _upsert(
            uow, EVENTS, event.event_id, event.model_dump(mode="json", include=EVENT_FIELDS)
        )
        if event.recording_url and not (before or {}).get("recording_url"):
            tell = self.tell(uow, envelope)
            async for person in uow.db[RECIPIENTS].find({"event_id": event.event_id, "status": "registered"}):
                await tell(
                    "recording_available",
                    event.event_id,
                    person["_id"],
                    {"event_id": event.event_id, "url": event.recording_url},
                )

    async def suggested(self, event: MatchSuggested, envelope: Envelope, uow: UnitOfWork) -> None:
        ahead = [p.company_id for e in uow.batch if isinstance(e, MatchSuggested) for p in e.parties]
        if await existing(uow, ERASURES, [p.company_id for p in event.parties], ahead):
            return  # the suggestion was made before its company was erased, and arrived after
        for party in event.parties:
            await _collect_for_digest(uow, self.settings, event, party.participant_id)
        uow.after_commit(self.wake)

    async def meeting_changed(
        self,
        event: MeetingRequested | MeetingAccepted | MeetingDeclined | MeetingCancelled,
        envelope: Envelope,
        uow: UnitOfWork,
    ) -> None:
        await _meeting_changed(uow, self.settings, event, self.tell(uow, envelope))
        uow.after_commit(self.wake)

    async def meeting_scheduled(self, event: MeetingScheduled, envelope: Envelope, uow: UnitOfWork) -> None:
        await _meeting_scheduled(uow, self.settings, event, self.tell(uow, envelope))
        uow.after_commit(self.wake)

    async def meeting_unscheduled(
        self, event: MeetingUnscheduled, envelope: Envelope, uow: UnitOfWork
    ) -> None:
        if await uow.db[ERASURES].find_one({"participants": {"$in": event.parties}}):
            return  # the erasure removed the meeting; nothing may name its parties again
        known = await uow.db[MEETINGS].find_one({"_id": event.meeting_id}) or {}
        await uow.db[MEETINGS].update_one(
            {"_id": event.meeting_id},
            {
                "$set": {
                    "placement": None,
                    "last_placement": known.get("placement"),
                    "sequence": event.sequence,
                }
            },
            upsert=True,
        )
        await cancel_timers(uow, {"data.meeting_id": event.meeting_id, "kind": "reminder"})
        if event.reason != "cancelled" and known.get("placement"):
            data = _meeting_data(
                event.meeting_id, event.event_id, event.parties, known["placement"], event.sequence
            )
            tell = self.tell(uow, envelope)
            for pid in event.parties:
                await tell("meeting_dropped", f"{event.meeting_id}#{event.sequence}", pid, data)

    async def schedule_published(self, event: SchedulePublished, envelope: Envelope, uow: UnitOfWork) -> None:
        if event.schedule_version == 1:
            await _agendas(uow, event.event_id, self.tell(uow, envelope))


def make_handlers(settings: Settings, wake: Callable[[], None]) -> Handlers:
    """What notifications takes from the topics, each with its handler; `wake` wakes delivery."""
    facts = _Facts(settings, wake)
    return {
        ParticipantRegistered: facts.participant_registered,
        ParticipantWithdrawn: _participant_withdrawn,
        CompanyRegistered: _company,
        CompanyUpdated: _company,
        CompanyErased: _company_erased,
        ClusterRegistered: _cluster,
        EventCreated: facts.event_changed,
        EventUpdated: facts.event_changed,
        MatchSuggested: facts.suggested,
        MeetingRequested: facts.meeting_changed,
        MeetingAccepted: facts.meeting_changed,
        MeetingDeclined: facts.meeting_changed,
        MeetingCancelled: facts.meeting_changed,
        MeetingScheduled: facts.meeting_scheduled,
        MeetingUnscheduled: facts.meeting_unscheduled,
        SchedulePublished: facts.schedule_published,
    }


# What a unit of work remembers for the handlers after it (UnitOfWork.local).
_DIGEST_DUE = "notifications.digest_due"  # recipients whose digest timer is due
_DIGEST_TIMERS = "notifications.digest_timers"  # recipient id -> its digest timer, as read
_DIGEST_PEOPLE = "notifications.digest_people"  # recipient id -> its digest settings, as read
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
    "link",
    "recording_url",
}


async def _upsert(
    uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]
) -> dict[str, Any] | None:
    """Set `doc`'s fields; returns the document as it was before (None: new)."""
    return await uow.db[collection].find_one_and_update({"_id": doc_id}, {"$set": doc}, upsert=True)


def _set_later(uow: UnitOfWork, collection: str, doc_id: str, doc: dict[str, Any]) -> None:
    """Set `doc`'s fields with the unit of work's other writes to `collection` (one statement
    for a batch, sent before anything reads it)."""
    uow.db[collection].write_later(UpdateOne({"_id": doc_id}, {"$set": doc}, upsert=True))


async def _participant_withdrawn(event: ParticipantWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    await uow.db[RECIPIENTS].update_one({"_id": event.participant_id}, {"$set": {"status": "withdrawn"}})
    await uow.db[OUTGOING].update_many(
        {"recipient_id": event.participant_id, "status": "pending"},
        {"$set": {"status": "cancelled", "reason": "the participant withdrew"}},
    )
    await cancel_timers(uow, {"recipient_id": event.participant_id})


async def _company(event: CompanyRegistered | CompanyUpdated, envelope: Envelope, uow: UnitOfWork) -> None:
    # Contact persons only if they agreed to be shown to matched companies.
    shown = [
        {"name": c.name, "email": c.email}
        for c in event.contacts
        if c.consent in (Consent.BROCHURE, Consent.MATCHES)
    ]
    _set_later(
        uow,
        COMPANIES,
        event.company_id,
        {"name": event.legal_name, "country": event.country, "contacts": shown},
    )


async def _company_erased(event: CompanyErased, envelope: Envelope, uow: UnitOfWork) -> None:
    people = await _forget_company(uow, event.company_id)
    # Ids and a date only: facts about the company or its people still in flight are recognised.
    await uow.db[ERASURES].update_one(
        {"_id": event.company_id},
        {"$set": {"erased_at": now()}, "$addToSet": {"participants": {"$each": people}}},
        upsert=True,
    )


async def _cluster(event: ClusterRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    _set_later(uow, CLUSTERS, event.cluster_id, {"name": event.name, "country": event.country})


async def _collect_for_digest(
    uow: UnitOfWork, settings: Settings, event: MatchSuggested, recipient_id: str
) -> None:
    """Keep the suggestion for the participant's next digest, and make sure one is due: after
    a short gathering delay, and no sooner than a period after the last one."""
    db = uow.db
    # Inserted with the batch's other digest items, unless a redelivery stored it already.
    db[DIGEST_ITEMS].insert_later(
        {
            "_id": f"{event.suggestion_id}:{recipient_id}",
            "recipient_id": recipient_id,
            "event_id": event.event_id,
            "fact": event.model_dump(mode="json"),
            "digest": None,
            "created_at": now(),
        }
    )
    # The digest timer is one document per participant; its state says when the last went out.
    # Reading it here also makes this transaction collide with one firing it, so that a
    # suggestion arriving while a digest is sent waits for the next period, not a second digest.
    # Within one unit of work (a batch of suggestions), a digest found or made due stays due.
    due_here: set[str] = uow.local.setdefault(_DIGEST_DUE, set())
    if recipient_id in due_here:
        return
    current, person = await _digest_state(uow, recipient_id)
    if current.get("status") == "pending":
        due_here.add(recipient_id)
        return
    period = timedelta(hours=float(person.get("digest_hours") or settings.digest_hours))
    if current.get("status") == "firing":
        # Being sent by an instance, or by one that was killed. The timer stays as it is: if
        # its instance died, it fires again once its lease runs out, with this suggestion too;
        # if the digest goes out without it, the timer is due again a period later (timers.fire).
        # (Overwriting it with a timer a period ahead lost the digest when the sender died.)
        await db[TIMERS].update_one(
            {"_id": current["_id"], "status": "firing"}, {"$set": {"again_at": now() + period}}
        )
        return
    last = current.get("last_sent_at") or person.get("last_digest_at")
    due = now() + timedelta(seconds=settings.digest_delay_seconds)
    if last is not None:
        due = max(due, utc(last) + period)
    timer(
        uow, f"digest:{recipient_id}", "suggestions_digest", recipient_id, due, {"event_id": event.event_id}
    )
    due_here.add(recipient_id)


async def _digest_state(uow: UnitOfWork, recipient_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The participant's digest timer and recipient document (empty when there is none), read
    for every participant the batch's suggestions name at once (two statements per batch)."""
    timers: dict[str, dict[str, Any]] = uow.local.setdefault(_DIGEST_TIMERS, {})
    people: dict[str, dict[str, Any]] = uow.local.setdefault(_DIGEST_PEOPLE, {})
    if recipient_id not in timers:
        named = {p.participant_id for e in uow.batch if isinstance(e, MatchSuggested) for p in e.parties}
        ids = [i for i in {recipient_id, *named} if i not in timers]
        found = {
            d["recipient_id"]: d
            async for d in uow.db[TIMERS].find({"_id": {"$in": [f"digest:{i}" for i in ids]}})
        }
        known = {
            d["_id"]: d
            async for d in uow.db[RECIPIENTS].find(
                {"_id": {"$in": ids}}, {"digest_hours": 1, "last_digest_at": 1}
            )
        }
        for i in ids:
            timers[i], people[i] = found.get(i, {}), known.get(i, {})
    return timers[recipient_id], people[recipient_id]


def _meeting_data(
    meeting_id: str, event_id: str, parties: list[str], placement: Any, sequence: int
) -> dict[str, Any]:
    return {
        "id": meeting_id,
        "meeting_id": meeting_id,
        "event_id": event_id,
        "parties": parties,
        "placement": placement,
        "sequence": sequence,
    }


async def _meeting_changed(uow: UnitOfWork, settings: Settings, event: Any, tell: Callable[..., Any]) -> None:
    db = uow.db
    if await db[ERASURES].find_one({"participants": {"$in": event.parties}}):
        # Made before a party's company was erased, arrived after (another partition): the
        # erasure cancelled the meeting, and nothing may name that party again.
        return
    known = (
        await db[MEETINGS].find_one_and_update(
            {"_id": event.meeting_id},
            {
                "$set": {
                    "event_id": event.event_id,
                    "parties": event.parties,
                    "requested_by": event.requested_by,
                    "answers": event.answers,
                    "status": event.status,
                }
            },
            upsert=True,
        )
        or {}
    )
    base = {"meeting_id": event.meeting_id, "event_id": event.event_id, "parties": event.parties}
    if isinstance(event, MeetingRequested):
        for invitee, answer in event.answers.items():
            if answer == "requested":
                await tell(
                    "meeting_request",
                    event.meeting_id,
                    invitee,
                    {**base, "requester": event.requested_by, "message": event.message},
                )
                due = now() + timedelta(hours=settings.nudge_after_hours)
                timer(uow, f"nudge:{event.meeting_id}:{invitee}", "nudge", invitee, due, base)
    elif isinstance(event, MeetingAccepted | MeetingDeclined):
        kind = "meeting_accepted" if isinstance(event, MeetingAccepted) else "meeting_declined"
        if event.by != event.requested_by:
            await tell(kind, event.meeting_id, event.requested_by, base)
        await cancel_timers(uow, {"kind": "nudge", "data.meeting_id": event.meeting_id})
    elif isinstance(event, MeetingCancelled):
        placed = known.get("placement")
        data = _meeting_data(
            event.meeting_id, event.event_id, event.parties, placed, known.get("sequence", 0) + 1
        )
        for party in event.parties:
            if party != event.by:
                await tell("meeting_cancelled", event.meeting_id, party, data)
        await cancel_timers(uow, {"data.meeting_id": event.meeting_id})


async def _meeting_scheduled(
    uow: UnitOfWork, settings: Settings, event: MeetingScheduled, tell: Callable[..., Any]
) -> None:
    db = uow.db
    if await db[ERASURES].find_one({"participants": {"$in": event.parties}}):
        return  # placed before a party was erased, arrived after: no reminders naming it
    placement = {
        "slot_id": event.slot_id,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "table": event.table,
    }
    await db[MEETINGS].update_one(
        {"_id": event.meeting_id},
        {
            "$set": {
                "event_id": event.event_id,
                "parties": event.parties,
                "placement": placement,
                "sequence": event.sequence,
            }
        },
        upsert=True,
    )
    data = _meeting_data(event.meeting_id, event.event_id, event.parties, placement, event.sequence)
    if event.schedule_version > 1:
        kind = "meeting_moved" if event.change == "moved" else "meeting_scheduled"
        for party in event.parties:
            await tell(kind, f"{event.meeting_id}#{event.sequence}", party, data)
    at = now()
    for party in event.parties:
        for offset in settings.reminder_offsets():
            due = event.starts_at - timedelta(seconds=offset)
            timer_id = f"reminder:{event.meeting_id}:{offset}:{party}"
            if due > at:
                timer(uow, timer_id, "reminder", party, due, {**data, "offset": offset})
            else:
                await cancel_timers(uow, {"_id": timer_id})
        found = await db[EVENTS].find_one({"_id": event.event_id}, {"ends_at": 1})
        ends = utc(found["ends_at"]) if found and found.get("ends_at") else event.ends_at
        await db[TIMERS].update_one(
            {"_id": f"outcome:{event.event_id}:{party}"},
            {
                "$setOnInsert": {
                    "kind": "outcome_request",
                    "recipient_id": party,
                    "due_at": ends + timedelta(hours=settings.outcome_after_hours),
                    "data": {"event_id": event.event_id},
                    "status": "pending",
                    "created_at": at,
                }
            },
            upsert=True,
        )


async def _agendas(uow: UnitOfWork, event_id: str, tell: Callable[..., Any]) -> None:
    """The first published schedule: each participant's agenda, all its meetings in one mail."""
    by_party: dict[str, list[dict[str, Any]]] = {}
    async for m in uow.db[MEETINGS].find({"event_id": event_id, "placement": {"$ne": None}}):
        for party in m["parties"]:
            by_party.setdefault(party, []).append(
                _meeting_data(m["_id"], event_id, m["parties"], m["placement"], m.get("sequence", 0))
            )
    for party, meetings in by_party.items():
        await tell("schedule_published", f"{event_id}#1", party, {"event_id": event_id, "meetings": meetings})


async def _forget_company(uow: UnitOfWork, company_id: str) -> list[str]:
    """Erasure: the company's people and what was queued for them go; messages to others
    that named them keep only their status. Answers the people's (participant) ids."""
    db = uow.db
    recipients = await db[RECIPIENTS].find({"company_id": company_id}, {"event_id": 1}).to_list(None)
    people = [r["_id"] for r in recipients]
    meetings = [m["_id"] async for m in db[MEETINGS].find({"parties": {"$in": people}}, {"_id": 1})]
    # Messages to others that named them keep their kind and status, not what they said.
    named = {company_id, *people, *meetings}
    events = list({r["event_id"] for r in recipients if r.get("event_id")})
    async for message in db[OUTGOING].find(
        {"event_id": {"$in": events}, "recipient_id": {"$nin": people}, "data": {"$exists": True}},
        {"data": 1, "status": 1},
    ):
        if any(name in json.dumps(message["data"], default=str) for name in named):
            changes: dict[str, Any] = {"$unset": {"data": "", "subject": ""}, "$set": {"redacted": True}}
            if message.get("status") in ("pending", "sending"):
                changes["$set"] |= {"status": "cancelled", "reason": "a party was erased"}
            await db[OUTGOING].update_one({"_id": message["_id"]}, changes)
    await db[MEETINGS].delete_many({"_id": {"$in": meetings}})
    await db[TIMERS].delete_many({"data.meeting_id": {"$in": meetings}})
    await uow.forget_published({"payload": {"$regex": "|".join(re.escape(i) for i in named)}})
    await db[OUTGOING].delete_many({"recipient_id": {"$in": people}})
    await db[TIMERS].delete_many(
        {"$or": [{"recipient_id": {"$in": people}}, {"data.parties": {"$in": people}}]}
    )
    await db[DIGEST_ITEMS].delete_many(
        {"$or": [{"recipient_id": {"$in": people}}, {"fact.parties.company_id": company_id}]}
    )
    await db[OUTGOING].update_many(
        {"data.items.parties.company_id": company_id, "status": {"$in": ["pending", "sending"]}},
        {"$set": {"status": "cancelled", "reason": "a party was erased"}},
    )
    await db[OUTGOING].update_many({"data.items.parties.company_id": company_id}, {"$unset": {"data": ""}})
    await db[RECIPIENTS].delete_many({"company_id": company_id})
    await db[COMPANIES].delete_one({"_id": company_id})
    return people
