"""What registration accepts over HTTP, and what it answers."""

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, HttpUrl, model_validator

from c2f_shared.vocabulary import Category, EventKind, Language, Membership, NeedKind, Sector

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


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ClusterIn(_In):
    name: Name
    short_name: Annotated[str, Field(min_length=1, max_length=40)]
    country: CountryCode
    region: Name | None = None
    sectors: Annotated[list[Sector], Field(min_length=1)]
    website: HttpUrl | None = None
    membership: Membership = Membership.FOUNDING


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


class CompanyIn(_In):
    cluster_id: str
    legal_name: Name
    country: CountryCode
    city: Name | None = None
    website: HttpUrl | None = None
    sectors: Annotated[list[Sector], Field(min_length=1)]
    offers: Annotated[list[OfferIn], Field(max_length=50)] = []
    needs: Annotated[list[NeedIn], Field(max_length=50)] = []
    target_markets: Annotated[list[MarketCode], Field(max_length=50)] = []


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
    def _ends_after_start(self) -> "EventIn":
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


class ClusterOut(ClusterIn, Created):
    pass


class CompanyOut(CompanyIn, Created):
    pass


class EventOut(EventIn, Created):
    pass


class ParticipantOut(ParticipantIn, Created):
    event_id: str
