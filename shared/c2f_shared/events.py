"""Event models: past-tense facts, frozen, versioned, tolerant of fields they do not know."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, ClassVar

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
