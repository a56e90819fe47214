"""What registration accepts over HTTP, and what it answers.

Limits are explicit (see README, "Registration: sizes and limits"); text in any
script is stored and returned exactly as given, apart from trimmed whitespace.
"""

from datetime import datetime
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    model_validator,
)

from c2f_shared.vocabulary import (
    SUB_SECTORS,
    Category,
    Consent,
    EventKind,
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
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Note = Annotated[str, Field(min_length=1, max_length=1000)]
Tag = Annotated[str, Field(min_length=1, max_length=40)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ().-]{6,24}$", examples=["+359 2 123 4567"])]


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


# -- clusters -----------------------------------------------------------------


class ClusterIn(_In):
    name: Name
    short_name: Annotated[str, Field(min_length=1, max_length=40)]
    country: CountryCode
    region: Name | None = None
    sectors: Sectors
    website: HttpUrl | None = None
    membership: Membership = Membership.FOUNDING


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

    @model_validator(mode="after")
    def _sub_sectors_within_sectors(self) -> Self:
        for sub in self.sub_sectors:
            if SUB_SECTORS[sub] not in self.sectors:
                sector = SUB_SECTORS[sub].value
                raise ValueError(
                    f"sub-sector {sub.value!r} belongs to sector {sector!r}, which is not listed"
                )
        return self


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


class EventIn(_In):
    name: Name
    kind: EventKind = EventKind.B2B
    host_cluster_id: str
    city: Name
    country: CountryCode
    venue_timezone: Annotated[str, AfterValidator(_known_timezone), Field(examples=["Europe/Sofia"])]
    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a UTC offset, e.g. 2027-03-16T09:00:00+02:00")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AttendeeIn(_In):
    name: Name
    email: EmailStr
    language: Language


class ParticipantIn(_In):
    company_id: str
    attendee: AttendeeIn
    consent_share_contact: bool = Field(
        False, description="May matched companies see this attendee's name and e-mail?"
    )


class Created(BaseModel):
    id: str
    created: bool = Field(description="False when an identical registration already existed.")


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


class EventOut(EventIn, Created):
    pass


class ParticipantOut(ParticipantIn, Created):
    event_id: str
