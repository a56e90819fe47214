"""What registration accepts over HTTP, and what it answers.

Limits are explicit (see docs/services.md, "Registration"); text in any
script is stored and returned exactly as given, apart from trimmed whitespace and names
kept on one line.
"""

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from c2f_shared.vocabulary import (
    SUB_SECTORS,
    Category,
    Consent,
    EventKind,
    EventMode,
    Language,
    Membership,
    NeedKind,
    Obstacle,
    Sector,
    SizeBand,
    SubSector,
)

CountryCode = Annotated[
    str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, e.g. BG", examples=["BG"])
]
MarketCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="ISO 3166 country or subdivision code, e.g. MX or US-CA",
        examples=["US-CA"],
    ),
]


def _one_line(value: str) -> str:
    """A name is one line: a line break or tab typed or pasted into one (a spreadsheet cell
    of two lines) is a space. Mails carry names in their headers, which are lines."""
    return _LINE_BREAKS.sub(" ", value)


_LINE_BREAKS = re.compile(r"\s*[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*")
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Note = Annotated[str, Field(min_length=1, max_length=1000)]
Tag = Annotated[str, Field(min_length=1, max_length=40)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ().-]{6,24}$", examples=["+359 2 123 4567"])]


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a time of day at the venue, without a UTC offset, e.g. 09:30")
    return value


# A time of day at the venue (its zone is the event's): "09:30" in, "09:30:00" out. Not JSON
# Schema's "time" format, which is RFC 3339's and needs a UTC offset.
LocalTime = Annotated[
    time,
    AfterValidator(_wall_clock),
    WithJsonSchema({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$"}),
]


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("items must be unique")
    return values


Unique = AfterValidator(_unique)
Sectors = Annotated[list[Sector], Field(min_length=1, max_length=5), Unique]
SubSectors = Annotated[list[SubSector], Field(max_length=10), Unique]
Tags = Annotated[list[Tag], Field(max_length=20), Unique]
Markets = Annotated[list[MarketCode], Field(max_length=30), Unique]
Languages = Annotated[list[Language], Field(max_length=6), Unique]


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Created(BaseModel):
    id: str
    created: bool = Field(description="False when an identical registration already existed.")


# -- clusters -----------------------------------------------------------------


class ClusterContactIn(_In):
    """The cluster's own contact point (an office, not a member's staff)."""

    name: Name
    email: EmailStr
    phone: Phone | None = None
    role: Name | None = None


class ClusterIn(_In):
    name: Name
    short_name: Annotated[str, Field(min_length=1, max_length=40)]
    country: CountryCode
    region: Name | None = None
    sectors: Sectors
    website: HttpUrl | None = None
    contact: ClusterContactIn | None = None
    membership: Membership = Membership.FOUNDING


class AgreementIn(_In):
    title: Name
    signed_on: date
    scope: Text = Field(description="What the signatories agree to do together")
    cluster_ids: Annotated[list[str], Field(min_length=2, max_length=50), Unique] = Field(
        description="Every cluster that signed, the partnership's own included"
    )


class AgreementOut(AgreementIn, Created):
    pass


# -- companies ----------------------------------------------------------------


class OfferIn(_In):
    title: Name
    description: Text
    category: Category
    language: Language


class NeedIn(_In):
    title: Name
    description: Text
    kind: NeedKind
    category: Category | None = None
    language: Language


class ObstacleIn(_In):
    kind: Obstacle
    detail: Note | None = None

    @model_validator(mode="after")
    def _other_needs_detail(self) -> Self:
        if self.kind is Obstacle.OTHER and not self.detail:
            raise ValueError("an obstacle of kind 'other' needs a detail")
        return self


class ConnectionIn(_In):
    market: MarketCode | None = None
    organisation: Name | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _market_or_organisation(self) -> Self:
        if self.market is None and self.organisation is None:
            raise ValueError("a connection names a market, an organisation, or both")
        return self


class ContactIn(_In):
    name: Name
    email: EmailStr
    phone: Phone | None = None
    role: Name | None = None
    language: Language
    consent: Consent = Field(
        Consent.NONE,
        description="brochure: shown in the Smart City brochure and to matched companies; "
        "matches: shared with matched companies only; none: never shown",
    )


class CompanyFields(_In):
    legal_name: Name
    country: CountryCode
    city: Name | None = None
    website: HttpUrl | None = None
    size_band: SizeBand | None = None
    sectors: Sectors
    sub_sectors: SubSectors = []
    tags: Tags = []
    offers: Annotated[list[OfferIn], Field(max_length=20)] = []
    needs: Annotated[list[NeedIn], Field(max_length=20)] = []
    target_markets: Markets = []
    obstacles: Annotated[list[ObstacleIn], Field(max_length=20)] = []
    connections: Annotated[list[ConnectionIn], Field(max_length=50)] = []
    working_languages: Languages = []
    contacts: Annotated[list[ContactIn], Field(max_length=10)] = []

    @field_validator("sub_sectors")
    @classmethod
    def _sub_sectors_within_sectors(cls, value: list[SubSector], info: ValidationInfo) -> list[SubSector]:
        sectors = info.data.get("sectors") or []
        for sub in value:
            if SUB_SECTORS[sub] not in sectors:
                sector = SUB_SECTORS[sub].value
                raise ValueError(
                    f"sub-sector {sub.value!r} belongs to sector {sector!r}, which is not listed"
                )
        return value


class CompanyIn(CompanyFields):
    cluster_id: str


class CompanyPatch(_In):
    """Any subset of the profile's fields; lists given replace the stored ones."""

    legal_name: Name | None = None
    country: CountryCode | None = None
    city: Name | None = None
    website: HttpUrl | None = None
    size_band: SizeBand | None = None
    sectors: list[Any] | None = None
    sub_sectors: list[Any] | None = None
    tags: list[Any] | None = None
    offers: list[Any] | None = None
    needs: list[Any] | None = None
    target_markets: list[Any] | None = None
    obstacles: list[Any] | None = None
    connections: list[Any] | None = None
    working_languages: list[Any] | None = None
    contacts: list[Any] | None = None


class CompanyOut(CompanyIn):
    id: str
    revision: int
    created: bool = Field(False, description="True only in the answer that created it.")
    created_at: datetime
    updated_at: datetime


class CompanyPage(BaseModel):
    items: list[CompanyOut]
    total: int
    limit: int
    offset: int


# -- events and participants ---------------------------------------------------


class BreakIn(_In):
    """A pause in every meeting day, in the venue's local time."""

    start: LocalTime
    end: LocalTime


class MeetingPlan(_In):
    """When meetings can happen at a B2B or C2C event, in the venue's local time."""

    days: Annotated[list[date], Field(min_length=1, max_length=14), Unique]
    day_start: LocalTime = Field(examples=["09:00"])
    day_end: LocalTime = Field(examples=["17:00"])
    slot_minutes: Annotated[int, Field(ge=5, le=240)] = 20
    breaks: Annotated[list[BreakIn], Field(max_length=10)] = []
    tables: Annotated[int, Field(ge=1, le=1000, description="Meetings that can run at once")] = 10
    auto_accept: bool = Field(False, description="Accept every meeting request at once")
    max_requests: Annotated[int, Field(ge=1, le=200)] | None = Field(
        None, description="Requests a participant may have open or accepted"
    )
    max_meetings: Annotated[int, Field(ge=1, le=200)] | None = Field(
        None, description="Accepted meetings per participant"
    )
    requests_deadline: datetime | None = Field(None, description="No meeting requests after this moment")
    auto_reschedule: bool = Field(
        False,
        description="Once a schedule is published, publish a new version by itself a few seconds "
        "after late accepts, cancellations or availability changes (moving as few meetings as it can)",
    )

    @model_validator(mode="after")
    def _sane_day(self) -> Self:
        if self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start")
        if self.requests_deadline is not None and self.requests_deadline.tzinfo is None:
            raise ValueError("requests_deadline needs a UTC offset, e.g. 2027-03-10T18:00:00+02:00")
        for pause in self.breaks:
            if not self.day_start <= pause.start < pause.end <= self.day_end:
                raise ValueError(f"break {pause.start:%H:%M}-{pause.end:%H:%M} must lie within the day")
        return self


class EventFields(_In):
    name: Name
    kind: EventKind = EventKind.B2B
    mode: EventMode = EventMode.ON_SITE
    venue: Name | None = None
    city: Name
    country: CountryCode
    venue_timezone: Annotated[str, AfterValidator(_known_timezone), Field(examples=["Europe/Sofia"])]
    starts_at: datetime
    ends_at: datetime
    registration_deadline: datetime | None = None
    capacity: Annotated[int, Field(ge=1, le=100_000)] | None = None
    meetings: MeetingPlan | None = Field(
        None, description="B2B and C2C events: days, slots, breaks and tables"
    )
    topic: Text | None = Field(None, description="Webinars: what it is about")
    speakers: Annotated[list[Name], Field(max_length=20)] = []
    link: HttpUrl | None = Field(None, description="Webinars and virtual events: where to join")
    recording_url: HttpUrl | None = Field(None, description="Webinars: the recording, once there is one")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name in ("starts_at", "ends_at", "registration_deadline"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a UTC offset, e.g. 2027-03-16T09:00:00+02:00")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.registration_deadline is not None and self.registration_deadline > self.ends_at:
            raise ValueError("registration_deadline must not be after the event ends")
        if self.kind is EventKind.WEBINAR:
            if self.meetings is not None:
                raise ValueError("a webinar has no meeting plan")
            if not self.topic:
                raise ValueError("a webinar needs a topic")
        if self.meetings is not None:
            zone = ZoneInfo(self.venue_timezone)
            first = datetime.combine(self.meetings.days[0], self.meetings.day_start, zone)
            last = datetime.combine(self.meetings.days[-1], self.meetings.day_end, zone)
            if first < self.starts_at or last > self.ends_at:
                raise ValueError("meeting days must lie between starts_at and ends_at")
        return self

    def meeting_slots(self) -> list[dict[str, Any]]:
        """Every meeting slot, skipping breaks; a slot's id is its local start time."""
        if self.meetings is None:
            return []
        plan, zone = self.meetings, ZoneInfo(self.venue_timezone)
        step = timedelta(minutes=plan.slot_minutes)
        slots = []
        for day in sorted(plan.days):
            start = datetime.combine(day, plan.day_start, zone)
            day_end = datetime.combine(day, plan.day_end, zone)
            while start + step <= day_end:
                end = start + step
                clash = next(
                    (
                        b
                        for b in plan.breaks
                        if start < datetime.combine(day, b.end, zone)
                        and datetime.combine(day, b.start, zone) < end
                    ),
                    None,
                )
                if clash is not None:
                    start = datetime.combine(day, clash.end, zone)
                    continue
                slots.append({"id": start.strftime("%Y-%m-%dT%H:%M"), "starts_at": start, "ends_at": end})
                start = end
        return slots


class EventIn(EventFields):
    host_cluster_id: str


class EventPatch(_In):
    """Any subset of an event's fields (not its host or kind)."""

    name: Name | None = None
    mode: EventMode | None = None
    venue: Name | None = None
    city: Name | None = None
    country: CountryCode | None = None
    venue_timezone: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    registration_deadline: datetime | None = None
    capacity: int | None = None
    meetings: dict[str, Any] | None = None
    topic: str | None = None
    speakers: list[Any] | None = None
    link: str | None = None
    recording_url: str | None = None


class SlotOut(BaseModel):
    id: str
    starts_at: datetime
    ends_at: datetime


class EventOut(EventIn):
    id: str
    revision: int
    created: bool = False
    registered: int = Field(0, description="Participants registered here (withdrawals excluded)")
    slots: list[SlotOut] = []


class AttendeeIn(_In):
    name: Name
    email: EmailStr
    language: Language


class ParticipantIn(_In):
    company_id: str | None = Field(None, description="B2B events and webinars: the member company")
    delegation_of: str | None = Field(None, description="C2C events: the cluster whose delegation this is")
    attendee: AttendeeIn
    availability: Annotated[list[str], Field(max_length=500), Unique] | None = Field(
        None, description="Slot ids the participant can meet in; omitted: every slot"
    )
    languages: Languages = []
    max_meetings: Annotated[int, Field(ge=1, le=100)] | None = None
    consent_share_contact: bool = Field(
        False, description="May matched companies see this attendee's name and e-mail?"
    )

    @model_validator(mode="after")
    def _company_or_delegation(self) -> Self:
        if (self.company_id is None) == (self.delegation_of is None):
            raise ValueError("give either company_id (B2B, webinar) or delegation_of (C2C)")
        return self


class ParticipantPatch(_In):
    """What a participant may change after signing up; the schedule adapts."""

    availability: Annotated[list[str], Field(max_length=500), Unique] | None = Field(
        None, description="Slot ids the participant can meet in; empty list: every slot"
    )
    languages: Languages = []  # (not null: a participant's languages are a list, perhaps empty)
    max_meetings: Annotated[int, Field(ge=1, le=100)] | None = None


class ParticipantOut(ParticipantIn):
    id: str
    event_id: str
    cluster_id: str
    status: str = "registered"
    access_token: str | None = Field(
        None,
        description="Shown once, in the answer that registers: the participant's own token for "
        "the participant-facing endpoints of the platform.",
    )


class ApiKeyCreated(BaseModel):
    id: str
    key: str = Field(description="Shown once: store it now. Send it as `Authorization: Bearer <key>`.")
    cluster_id: str
    created_at: datetime


class ApiKeyInfo(BaseModel):
    id: str
    cluster_id: str
    created_at: datetime
    revoked_at: datetime | None = None


class ClusterOut(ClusterIn, Created):
    api_key: ApiKeyCreated | None = Field(
        None, description="The cluster's first API key, only in the answer that created the cluster."
    )


class ProblemOut(BaseModel):
    row: int
    column: str | None
    problem: str


class ImportReport(BaseModel):
    id: str | None = None
    cluster_id: str
    dry_run: bool
    status: Literal["checked", "running", "done", "failed", "interrupted"]
    total: int
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[ProblemOut] = []
    error: str | None = None
