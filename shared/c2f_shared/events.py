"""Event models: past-tense facts, frozen, versioned, tolerant of fields they do not know."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict

from c2f_shared import topics


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(_Value):
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError


EVENT_TYPES: dict[str, type[Event]] = {}


def _register(model: type[Event]) -> type[Event]:
    EVENT_TYPES[model.TYPE] = model
    return model


@_register
class PartnershipAgreementSigned(Event):
    """Clusters signed a partnership agreement (how partners join after the founding six)."""

    TYPE = "PartnershipAgreementSigned"
    TOPIC = topics.CLUSTERS

    agreement_id: str
    title: str
    signed_on: date
    scope: str
    cluster_ids: list[str]

    def aggregate_id(self) -> str:
        return self.agreement_id


class Offer(_Value):
    title: str
    description: str
    category: str
    language: str


class Need(_Value):
    title: str
    description: str
    kind: str
    category: str | None = None
    language: str


class Attendee(_Value):
    name: str
    email: str
    language: str


@_register
class ClusterRegistered(Event):
    TYPE = "ClusterRegistered"
    TOPIC = topics.CLUSTERS

    cluster_id: str
    name: str
    short_name: str
    country: str
    region: str | None = None
    sectors: list[str]
    website: str | None = None
    contact: dict[str, str | None] | None = None  # name, email, phone, role of the cluster's office
    membership: str

    def aggregate_id(self) -> str:
        return self.cluster_id


class Contact(_Value):
    name: str
    email: str
    phone: str | None = None
    role: str | None = None
    language: str
    consent: str = "none"  # vocabulary.Consent


class ObstacleNote(_Value):
    kind: str  # vocabulary.Obstacle
    detail: str | None = None


class Connection(_Value):
    """A market or an organisation the company already works with."""

    market: str | None = None
    organisation: str | None = None
    note: str | None = None


class _CompanyFacts(Event):
    """The whole profile of a member company, as registration holds it after the change."""

    TOPIC = topics.COMPANIES

    company_id: str
    cluster_id: str
    revision: int = 1
    legal_name: str
    country: str
    city: str | None = None
    website: str | None = None
    size_band: str | None = None
    sectors: list[str]
    sub_sectors: list[str] = []
    tags: list[str] = []
    offers: list[Offer]
    needs: list[Need]
    target_markets: list[str] = []
    obstacles: list[ObstacleNote] = []
    connections: list[Connection] = []
    working_languages: list[str] = []
    contacts: list[Contact] = []

    def aggregate_id(self) -> str:
        return self.company_id


@_register
class CompanyRegistered(_CompanyFacts):
    TYPE = "CompanyRegistered"
    VERSION = 2  # v2 added sub-sectors, tags, obstacles, connections, languages, contacts, revision


@_register
class CompanyUpdated(_CompanyFacts):
    """The profile after a change; `revision` grows by one with each change."""

    TYPE = "CompanyUpdated"


@_register
class CompanyErased(Event):
    """The company and its personal data were erased (GDPR); every service must forget them."""

    TYPE = "CompanyErased"
    TOPIC = topics.COMPANIES

    company_id: str
    cluster_id: str

    def aggregate_id(self) -> str:
        return self.company_id


class Slot(_Value):
    """One meeting slot: its id is the local start in the venue's time zone, e.g. 2027-03-16T09:00."""

    id: str
    starts_at: datetime
    ends_at: datetime


class Break(_Value):
    start: time
    end: time


class MeetingPlan(_Value):
    """When meetings can happen, in the venue's local time."""

    days: list[date]
    day_start: time
    day_end: time
    slot_minutes: int
    breaks: list[Break] = []
    tables: int
    # The organiser's rules for meeting requests (absent in older events: no limits).
    auto_accept: bool = False
    max_requests: int | None = None  # requests a participant may have open or accepted
    max_meetings: int | None = None  # accepted meetings per participant
    requests_deadline: datetime | None = None
    auto_reschedule: bool = False  # publish a new schedule version by itself after changes


class _EventFacts(Event):
    """A partnership event (B2B, C2C or webinar) as registration holds it after the change."""

    TOPIC = topics.EVENTS

    event_id: str
    revision: int = 1
    name: str
    kind: str  # vocabulary.EventKind
    mode: str = "on_site"  # vocabulary.EventMode
    host_cluster_id: str
    venue: str | None = None
    city: str
    country: str
    venue_timezone: str
    starts_at: datetime
    ends_at: datetime
    registration_deadline: datetime | None = None
    capacity: int | None = None
    meetings: MeetingPlan | None = None
    slots: list[Slot] = []
    topic: str | None = None
    speakers: list[str] = []
    link: str | None = None
    recording_url: str | None = None

    def aggregate_id(self) -> str:
        return self.event_id


@_register
class EventCreated(_EventFacts):
    """A partnership event was created; `event_id` is the partnership event's id."""

    TYPE = "EventCreated"
    VERSION = 2  # v2 added mode, venue, deadline, capacity, slots and tables, webinar fields, revision


@_register
class EventUpdated(_EventFacts):
    """The event after a change (e.g. a webinar's recording link); `revision` grows by one."""

    TYPE = "EventUpdated"


@_register
class ParticipantRegistered(Event):
    """A member company (B2B, webinar) or a cluster delegation (C2C) signed up for an event."""

    TYPE = "ParticipantRegistered"
    VERSION = 2  # v2 added delegation, availability, languages, max_meetings, access_token_hash
    TOPIC = topics.PARTICIPANTS

    participant_id: str
    event_id: str
    company_id: str | None = None  # None for a C2C delegation
    cluster_id: str
    attendee: Attendee
    consent_share_contact: bool
    availability: list[str] = []  # slot ids; empty: every slot
    languages: list[str] = []
    max_meetings: int | None = None
    access_token_hash: str | None = None  # SHA-256 of the participant's secret, to check its token

    def aggregate_id(self) -> str:
        return self.participant_id


@_register
class ParticipantUpdated(Event):
    """A participant changed when it can meet, how many meetings it wants, or its languages."""

    TYPE = "ParticipantUpdated"
    TOPIC = topics.PARTICIPANTS

    participant_id: str
    event_id: str
    availability: list[str] = []  # slot ids; empty: every slot
    languages: list[str] = []
    max_meetings: int | None = None

    def aggregate_id(self) -> str:
        return self.participant_id


@_register
class ParticipantWithdrawn(Event):
    TYPE = "ParticipantWithdrawn"
    TOPIC = topics.PARTICIPANTS

    participant_id: str
    event_id: str

    def aggregate_id(self) -> str:
        return self.participant_id


class MatchParty(_Value):
    participant_id: str
    company_id: str
    company_name: str
    country: str


class MatchReason(_Value):
    """`offered_by` offers `offer_title`, which fits `needed_by`'s need `need_title`."""

    offered_by: str
    offer_title: str
    needed_by: str
    need_title: str
    basis: str


@_register
class MatchSuggested(Event):
    TYPE = "MatchSuggested"
    VERSION = 2
    TOPIC = topics.MATCH_SUGGESTIONS

    suggestion_id: str
    event_id: str
    event_name: str
    parties: tuple[MatchParty, MatchParty]
    reasons: list[MatchReason]
    score: float
    # v2: structured reasons, e.g. {"kind": "shared_markets", "markets": ["MX"]}, and the score's parts
    signals: list[dict[str, Any]] = []
    score_parts: dict[str, float] = {}

    def aggregate_id(self) -> str:
        # Keyed by event so one event's suggestions stay in order.
        return self.event_id


@_register
class NotificationSent(Event):
    TYPE = "NotificationSent"
    TOPIC = topics.NOTIFICATIONS_SENT

    notification_id: str
    kind: str
    recipient_participant_id: str
    about_id: str
    sent_at: datetime

    def aggregate_id(self) -> str:
        return self.recipient_participant_id


@_register
class MessageDeadLettered(Event):
    """A consumer could not process a message and set it aside with the reason."""

    TYPE = "MessageDeadLettered"
    TOPIC = topics.DEAD_LETTERS

    dead_letter_id: str
    service: str
    topic: str
    partition: int
    offset: int
    reason: str
    payload: str

    def aggregate_id(self) -> str:
        return self.service


# Stands for an erased participant in the facts about meetings it was part of (the meeting's
# cancellation): the other parties hear of it, and the erased one's id travels no further.
ERASED_PARTY: Final = "erased"


class _MeetingFacts(Event):
    """A meeting request's whole state after one transition, so a consumer needs no history.
    Keyed by event: one event's meetings stay in order. A party erased meanwhile is
    ERASED_PARTY in `parties`, `requested_by` and `answers`."""

    TOPIC = topics.MEETINGS

    meeting_id: str
    event_id: str
    requested_by: str  # participant id
    parties: list[str]  # participant ids, the requester first (C2C: two or more delegations)
    answers: dict[str, str]  # invitee → requested | accepted | declined
    status: str  # vocabulary.MeetingStatus
    by: str  # who made this transition: a participant id, "operator" or "auto"
    message: str | None = None
    priority: int = 1

    def aggregate_id(self) -> str:
        return self.event_id


@_register
class MeetingRequested(_MeetingFacts):
    TYPE = "MeetingRequested"


@_register
class MeetingAccepted(_MeetingFacts):
    TYPE = "MeetingAccepted"


@_register
class MeetingDeclined(_MeetingFacts):
    TYPE = "MeetingDeclined"


@_register
class MeetingCancelled(_MeetingFacts):
    TYPE = "MeetingCancelled"


@_register
class MeetingScheduled(Event):
    """A meeting has a slot and a table (new), or a different one than before (moved).
    `sequence` grows with every change, as in iCalendar's SEQUENCE."""

    TYPE = "MeetingScheduled"
    TOPIC = topics.MEETINGS

    meeting_id: str
    event_id: str
    parties: list[str]
    slot_id: str
    starts_at: datetime
    ends_at: datetime
    table: str
    sequence: int
    schedule_version: int
    change: str  # "new" | "moved"

    def aggregate_id(self) -> str:
        return self.event_id


@_register
class MeetingUnscheduled(Event):
    """A meeting that was in the published schedule is not any more, with the reason."""

    TYPE = "MeetingUnscheduled"
    TOPIC = topics.MEETINGS

    meeting_id: str
    event_id: str
    parties: list[str]
    sequence: int
    schedule_version: int
    reason: str  # "cancelled" | "no_room" (no slot left where every party is free)

    def aggregate_id(self) -> str:
        return self.event_id


@_register
class SchedulePublished(Event):
    """The organiser published (a new version of) an event's schedule; the meetings it adds,
    moves and drops follow as MeetingScheduled / MeetingUnscheduled."""

    TYPE = "SchedulePublished"
    TOPIC = topics.MEETINGS

    event_id: str
    schedule_version: int
    accepted: int
    scheduled: int
    moved: int
    unscheduled: int
    idle_slots: int
    method: str
    proven_optimal: bool

    def aggregate_id(self) -> str:
        return self.event_id


@_register
class MeetingOutcomeRecorded(Event):
    """One side's account of a meeting: held or not, a rating, and what followed."""

    TYPE = "MeetingOutcomeRecorded"
    TOPIC = topics.MEETINGS

    meeting_id: str
    event_id: str
    participant_id: str
    held: bool
    rating: int | None = None  # 1..5
    follow_up: str = "none"  # vocabulary.FollowUp
    revision: int = 1

    def aggregate_id(self) -> str:
        return self.event_id
