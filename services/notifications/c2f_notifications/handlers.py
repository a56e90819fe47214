"""Notifications' consumers: keep what messages need (recipients, events, names, meetings)
and queue one message per fact, kind and person, or a timer for a message that comes later
(digests, reminders, nudges, outcome requests).

A queue entry's id is its dedupe key (kind, fact, recipient), so a redelivered event queues
nothing new and the same person is never told the same thing twice.
"""

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from c2f_notifications.config import Settings
from c2f_notifications.messages import ESSENTIAL
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
    WEBHOOKS,
)
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    CompanyUpdated,
    Event,
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
from c2f_shared.service import UnitOfWork
from c2f_shared.service.runtime import Handler
from c2f_shared.times import now, utc
from c2f_shared.vocabulary import Consent

HANDLES = (
    ParticipantRegistered,
    ParticipantWithdrawn,
    CompanyRegistered,
    CompanyUpdated,
    CompanyErased,
    ClusterRegistered,
    EventCreated,
    EventUpdated,
    MatchSuggested,
    MeetingRequested,
    MeetingAccepted,
    MeetingDeclined,
    MeetingCancelled,
    MeetingScheduled,
    MeetingUnscheduled,
    SchedulePublished,
)


def dedupe_key(kind: str, about_id: str, recipient_id: str) -> str:
    return f"{kind}:{about_id}:{recipient_id}"


async def queue(
    uow: UnitOfWork,
    kind: str,
    about_id: str,
    recipient_id: str,
    data: dict[str, Any],
    correlation_id: str | None = None,
) -> bool:
    """Queue one e-mail (once: the dedupe key is the _id), and a copy for the recipient's
    cluster's webhook if it has one. Optional kinds the recipient muted are not queued."""
    recipient = await uow.db[RECIPIENTS].find_one({"_id": recipient_id}, session=uow.session)
    if recipient is not None and kind not in ESSENTIAL and kind in recipient.get("muted", []):
        return False
    if recipient is None and await uow.db[ERASURES].find_one(
        {"participants": recipient_id}, session=uow.session
    ):
        return False  # erased (a fact in flight, e.g. the meeting its erasure cancelled): nobody to tell
    at = now()
    key = dedupe_key(kind, about_id, recipient_id)
    result = await uow.db[OUTGOING].update_one(
        {"_id": key},
        {
            "$setOnInsert": {
                "kind": kind,
                "channel": "email",
                "about_id": about_id,
                "recipient_id": recipient_id,
                "event_id": data.get("event_id") or (recipient or {}).get("event_id"),
                "data": data,
                "correlation_id": correlation_id,
                "status": "pending",
                "attempts": 0,
                "waits": 0,
                "tries": [],
                "next_attempt_at": at,
                "created_at": at,
            }
        },
        upsert=True,
        session=uow.session,
    )
    if result.upserted_id is None:
        return False
    hook = await uow.db[WEBHOOKS].find_one({"_id": (recipient or {}).get("cluster_id")}, session=uow.session)
    if hook is not None:
        # The cluster's own system hears the same fact (ids and what happened; no contact data).
        await uow.db[OUTGOING].update_one(
            {"_id": f"webhook:{key}"},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "channel": "webhook",
                    "cluster_id": hook["_id"],
                    "about_id": about_id,
                    "recipient_id": recipient_id,
                    "event_id": data.get("event_id") or (recipient or {}).get("event_id"),
                    "data": data,
                    "correlation_id": correlation_id,
                    "status": "pending",
                    "attempts": 0,
                    "tries": [],
                    "next_attempt_at": at,
                    "created_at": at,
                }
            },
            upsert=True,
            session=uow.session,
        )
    return True


async def timer(
    uow: UnitOfWork, timer_id: str, kind: str, recipient_id: str, due_at: datetime, data: dict[str, Any]
) -> None:
    """Something to send later; setting it again moves it (a meeting that moved)."""
    await uow.db[TIMERS].update_one(
        {"_id": timer_id},
        {
            "$set": {
                "kind": kind,
                "recipient_id": recipient_id,
                "due_at": due_at,
                "data": data,
                "status": "pending",
            },
            "$setOnInsert": {"created_at": now()},
        },
        upsert=True,
        session=uow.session,
    )


async def cancel_timers(uow: UnitOfWork, query: dict[str, Any]) -> None:
    await uow.db[TIMERS].update_many(
        {**query, "status": "pending"}, {"$set": {"status": "cancelled"}}, session=uow.session
    )


def make_handler(settings: Settings, wake: Callable[[], None]) -> Handler:
    async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        db, session = uow.db, uow.session

        async def upsert(collection: str, doc_id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
            before: dict[str, Any] | None = await db[collection].find_one_and_update(
                {"_id": doc_id}, {"$set": doc}, upsert=True, session=session
            )
            return before

        async def tell(kind: str, about: str, recipient: str, data: dict[str, Any]) -> None:
            if await queue(uow, kind, about, recipient, data, envelope.correlation_id):
                uow.after_commit(wake)

        if isinstance(event, ParticipantRegistered):
            await upsert(
                RECIPIENTS,
                event.participant_id,
                {
                    **event.attendee.model_dump(),
                    "consent_share_contact": event.consent_share_contact,
                    "event_id": event.event_id,
                    "company_id": event.company_id,
                    "cluster_id": event.cluster_id,
                    "token_hash": event.access_token_hash,
                    "status": "registered",
                },
            )
            await tell(
                "registration_confirmed",
                event.participant_id,
                event.participant_id,
                {"event_id": event.event_id},
            )
        elif isinstance(event, ParticipantWithdrawn):
            await db[RECIPIENTS].update_one(
                {"_id": event.participant_id}, {"$set": {"status": "withdrawn"}}, session=session
            )
            await db[OUTGOING].update_many(
                {"recipient_id": event.participant_id, "status": "pending"},
                {"$set": {"status": "cancelled", "reason": "the participant withdrew"}},
                session=session,
            )
            await cancel_timers(uow, {"recipient_id": event.participant_id})
        elif isinstance(event, CompanyRegistered | CompanyUpdated):
            # Contact persons only if they agreed to be shown to matched companies.
            shown = [
                {"name": c.name, "email": c.email}
                for c in event.contacts
                if c.consent in (Consent.BROCHURE, Consent.MATCHES)
            ]
            await upsert(
                COMPANIES,
                event.company_id,
                {"name": event.legal_name, "country": event.country, "contacts": shown},
            )
        elif isinstance(event, CompanyErased):
            people = await _forget_company(uow, event.company_id)
            # Ids and a date only: facts about the company or its people still in flight are recognised.
            await db[ERASURES].update_one(
                {"_id": event.company_id},
                {"$set": {"erased_at": now()}, "$addToSet": {"participants": {"$each": people}}},
                upsert=True,
                session=session,
            )
        elif isinstance(event, ClusterRegistered):
            await upsert(CLUSTERS, event.cluster_id, {"name": event.name, "country": event.country})
        elif isinstance(event, EventCreated | EventUpdated):
            fields = event.model_dump(
                mode="json",
                include={
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
                },
            )
            before = await upsert(EVENTS, event.event_id, fields)
            if event.recording_url and not (before or {}).get("recording_url"):
                async for person in db[RECIPIENTS].find(
                    {"event_id": event.event_id, "status": "registered"}, session=session
                ):
                    await tell(
                        "recording_available",
                        event.event_id,
                        person["_id"],
                        {"event_id": event.event_id, "url": event.recording_url},
                    )
        elif isinstance(event, MatchSuggested):
            erased = await db[ERASURES].find_one(
                {"_id": {"$in": [p.company_id for p in event.parties]}}, session=session
            )
            if erased is not None:
                return  # the suggestion was made before its company was erased, and arrived after
            for party in event.parties:
                await _collect_for_digest(uow, settings, event, party.participant_id)
            uow.after_commit(wake)
        elif isinstance(event, MeetingRequested | MeetingAccepted | MeetingDeclined | MeetingCancelled):
            await _meeting_changed(uow, settings, event, tell)
            uow.after_commit(wake)
        elif isinstance(event, MeetingScheduled):
            await _meeting_scheduled(uow, settings, event, tell)
            uow.after_commit(wake)
        elif isinstance(event, MeetingUnscheduled):
            known = await db[MEETINGS].find_one({"_id": event.meeting_id}, session=session) or {}
            await db[MEETINGS].update_one(
                {"_id": event.meeting_id},
                {
                    "$set": {
                        "placement": None,
                        "last_placement": known.get("placement"),
                        "sequence": event.sequence,
                    }
                },
                upsert=True,
                session=session,
            )
            await cancel_timers(uow, {"data.meeting_id": event.meeting_id, "kind": "reminder"})
            if event.reason != "cancelled" and known.get("placement"):
                data = _meeting_data(
                    event.meeting_id, event.event_id, event.parties, known["placement"], event.sequence
                )
                for pid in event.parties:
                    await tell("meeting_dropped", f"{event.meeting_id}#{event.sequence}", pid, data)
        elif isinstance(event, SchedulePublished) and event.schedule_version == 1:
            await _agendas(uow, event.event_id, tell)

    return handle


async def _collect_for_digest(
    uow: UnitOfWork, settings: Settings, event: MatchSuggested, recipient_id: str
) -> None:
    """Keep the suggestion for the participant's next digest, and make sure one is due: after
    a short gathering delay, and no sooner than a period after the last one."""
    db, session = uow.db, uow.session
    await db[DIGEST_ITEMS].update_one(
        {"_id": f"{event.suggestion_id}:{recipient_id}"},
        {
            "$setOnInsert": {
                "recipient_id": recipient_id,
                "event_id": event.event_id,
                "fact": event.model_dump(mode="json"),
                "digest": None,
                "created_at": now(),
            }
        },
        upsert=True,
        session=session,
    )
    # The digest timer is one document per participant; its state says when the last went out.
    # Reading it here also makes this transaction collide with one firing it, so that a
    # suggestion arriving while a digest is sent waits for the next period, not a second digest.
    current = await db[TIMERS].find_one({"_id": f"digest:{recipient_id}"}, session=session) or {}
    if current.get("status") == "pending":
        return
    person = await db[RECIPIENTS].find_one({"_id": recipient_id}, session=session) or {}
    period = timedelta(hours=float(person.get("digest_hours") or settings.digest_hours))
    last = now() if current.get("status") == "firing" else current.get("last_sent_at")
    last = last or person.get("last_digest_at")
    due = now() + timedelta(seconds=settings.digest_delay_seconds)
    if last is not None:
        due = max(due, utc(last) + period)
    await timer(
        uow, f"digest:{recipient_id}", "suggestions_digest", recipient_id, due, {"event_id": event.event_id}
    )


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
    db, session = uow.db, uow.session
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
            session=session,
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
                await timer(uow, f"nudge:{event.meeting_id}:{invitee}", "nudge", invitee, due, base)
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
    db, session = uow.db, uow.session
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
        session=session,
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
                await timer(uow, timer_id, "reminder", party, due, {**data, "offset": offset})
            else:
                await cancel_timers(uow, {"_id": timer_id})
        found = await db["events"].find_one({"_id": event.event_id}, {"ends_at": 1}, session=session)
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
            session=session,
        )


async def _agendas(uow: UnitOfWork, event_id: str, tell: Callable[..., Any]) -> None:
    """The first published schedule: each participant's agenda, all its meetings in one mail."""
    by_party: dict[str, list[dict[str, Any]]] = {}
    async for m in uow.db[MEETINGS].find(
        {"event_id": event_id, "placement": {"$ne": None}}, session=uow.session
    ):
        for party in m["parties"]:
            by_party.setdefault(party, []).append(
                _meeting_data(m["_id"], event_id, m["parties"], m["placement"], m.get("sequence", 0))
            )
    for party, meetings in by_party.items():
        await tell("schedule_published", f"{event_id}#1", party, {"event_id": event_id, "meetings": meetings})


async def _forget_company(uow: UnitOfWork, company_id: str) -> list[str]:
    """Erasure: the company's people and what was queued for them go; messages to others
    that named them keep only their status. Answers the people's (participant) ids."""
    db, session = uow.db, uow.session
    recipients = (
        await db[RECIPIENTS].find({"company_id": company_id}, {"event_id": 1}, session=session).to_list(None)
    )
    people = [r["_id"] for r in recipients]
    meetings = [
        m["_id"] async for m in db[MEETINGS].find({"parties": {"$in": people}}, {"_id": 1}, session=session)
    ]
    # Messages to others that named them keep their kind and status, not what they said.
    named = {company_id, *people, *meetings}
    events = list({r["event_id"] for r in recipients if r.get("event_id")})
    async for message in db[OUTGOING].find(
        {"event_id": {"$in": events}, "recipient_id": {"$nin": people}, "data": {"$exists": True}},
        {"data": 1, "status": 1},
        session=session,
    ):
        if any(name in json.dumps(message["data"], default=str) for name in named):
            changes: dict[str, Any] = {"$unset": {"data": "", "subject": ""}, "$set": {"redacted": True}}
            if message.get("status") in ("pending", "sending"):
                changes["$set"] |= {"status": "cancelled", "reason": "a party was erased"}
            await db[OUTGOING].update_one({"_id": message["_id"]}, changes, session=session)
    await db[MEETINGS].delete_many({"_id": {"$in": meetings}}, session=session)
    await db[TIMERS].delete_many({"data.meeting_id": {"$in": meetings}}, session=session)
    await uow.outbox.forget({"payload": {"$regex": "|".join(re.escape(i) for i in named)}}, session)
    await db[OUTGOING].delete_many({"recipient_id": {"$in": people}}, session=session)
    await db[TIMERS].delete_many({"recipient_id": {"$in": people}}, session=session)
    await db[DIGEST_ITEMS].delete_many(
        {"$or": [{"recipient_id": {"$in": people}}, {"fact.parties.company_id": company_id}]}, session=session
    )
    await db[OUTGOING].update_many(
        {"data.items.parties.company_id": company_id, "status": {"$in": ["pending", "sending"]}},
        {"$set": {"status": "cancelled", "reason": "a party was erased"}},
        session=session,
    )
    await db[OUTGOING].update_many(
        {"data.items.parties.company_id": company_id}, {"$unset": {"data": ""}}, session=session
    )
    await db[RECIPIENTS].delete_many({"company_id": company_id}, session=session)
    await db[COMPANIES].delete_one({"_id": company_id}, session=session)
    return people
