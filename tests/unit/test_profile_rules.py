"""Registration's rules for profiles, events and sign-ups, and reading spreadsheets (no I/O)."""

from typing import Any

import pydantic
import pytest

from c2f_registration import importer
from c2f_registration.schemas import CompanyFields, EventFields, ParticipantIn

BASE = {"legal_name": "Ѕвезда д.о.о.", "country": "RS", "sectors": ["ict"]}


def problems(model: type[pydantic.BaseModel], data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_text_in_any_script_is_kept_exactly_apart_from_outer_spaces() -> None:
    company = CompanyFields.model_validate({**BASE, "city": "  Нови Сад ", "tags": ["Έξυπνη πόλη", "čvor"]})
    assert (company.legal_name, company.city, company.tags) == (
        "Ѕвезда д.о.о.",
        "Нови Сад",
        ["Έξυπνη πόλη", "čvor"],
    )


def test_a_sub_sector_must_belong_to_a_listed_sector() -> None:
    assert CompanyFields.model_validate({**BASE, "sub_sectors": ["iot", "software"]}).sub_sectors
    [(loc, msg)] = problems(CompanyFields, {**BASE, "sub_sectors": ["waste"]})
    assert loc == ("sub_sectors",) and "belongs to sector 'environmental_technologies'" in msg


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"sectors": []}, ("sectors",)),
        ({"sectors": ["ict", "ict"]}, ("sectors",)),
        ({"sectors": ["space"]}, ("sectors", 0)),
        ({"country": "srb"}, ("country",)),
        ({"target_markets": ["US-California"]}, ("target_markets", 0)),
        ({"obstacles": [{"kind": "other"}]}, ("obstacles", 0)),
        ({"connections": [{"note": "no market, no organisation"}]}, ("connections", 0)),
        (
            {"contacts": [{"name": "A", "email": "a@b.example", "language": "sr", "phone": "call me"}]},
            ("contacts", 0, "phone"),
        ),
        (
            {"contacts": [{"name": "A", "email": "a@b.example", "language": "xx"}]},
            ("contacts", 0, "language"),
        ),
        ({"tags": ["x" * 41]}, ("tags", 0)),
        (
            {
                "offers": [{"title": "t", "description": "d", "category": "iot_sensors", "language": "sr"}]
                * 21
            },
            ("offers",),
        ),
        ({"unknown_field": 1}, ("unknown_field",)),
    ],
)
def test_profile_problems_name_their_field(change: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert loc in [found for found, _ in problems(CompanyFields, {**BASE, **change})]


def test_contact_consent_defaults_to_none() -> None:
    company = CompanyFields.model_validate(
        {**BASE, "contacts": [{"name": "A", "email": "a@b.example", "language": "sr"}]}
    )
    assert company.contacts[0].consent == "none"


EVENT = {
    "name": "Sofia B2B",
    "city": "Sofia",
    "country": "BG",
    "venue_timezone": "Europe/Sofia",
    "starts_at": "2027-03-27T08:00:00+02:00",
    "ends_at": "2027-03-28T18:00:00+03:00",
}


def test_slots_follow_the_plan_skip_breaks_and_respect_daylight_saving() -> None:
    event = EventFields.model_validate(
        {
            **EVENT,
            "meetings": {
                "days": ["2027-03-28", "2027-03-27"],
                "day_start": "09:00",
                "day_end": "10:30",
                "slot_minutes": 25,
                "breaks": [{"start": "09:30", "end": "09:45"}],
                "tables": 3,
            },
        }
    )
    slots = event.meeting_slots()
    # 09:25 would run into the break, so the next slot starts after it; 10:10 would end past 10:30.
    assert [s["id"] for s in slots] == [
        "2027-03-27T09:00",
        "2027-03-27T09:45",
        "2027-03-28T09:00",
        "2027-03-28T09:45",
    ]
    # Clocks go forward in Sofia on 28 March 2027: the same local time, another UTC offset.
    assert slots[0]["starts_at"].isoformat() == "2027-03-27T09:00:00+02:00"
    assert slots[2]["starts_at"].isoformat() == "2027-03-28T09:00:00+03:00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"meetings": {"days": ["2027-04-01"], "day_start": "09:00", "day_end": "10:00"}}, "meeting days"),
        (
            {
                "meetings": {
                    "days": ["2027-03-27"],
                    "day_start": "09:00",
                    "day_end": "10:00",
                    "breaks": [{"start": "08:00", "end": "08:30"}],
                }
            },
            "within the day",
        ),
        ({"kind": "webinar", "topic": None}, "a webinar needs a topic"),
        ({"registration_deadline": "2027-04-01T00:00:00+00:00"}, "deadline must not be after"),
        ({"venue_timezone": "Mars/Olympus"}, "unknown IANA time zone"),
    ],
)
def test_event_rules(change: dict[str, Any], message: str) -> None:
    assert any(message in msg for _, msg in problems(EventFields, {**EVENT, **change}))


def test_a_participant_is_a_company_or_a_delegation() -> None:
    attendee = {"name": "A", "email": "a@b.example", "language": "bg"}
    assert ParticipantIn.model_validate({"company_id": "c", "attendee": attendee}).company_id == "c"
    assert ParticipantIn.model_validate({"delegation_of": "k", "attendee": attendee}).delegation_of == "k"
    for both_or_neither in ({"company_id": "c", "delegation_of": "k"}, {}):
        assert any(
            "either company_id" in m
            for _, m in problems(ParticipantIn, {**both_or_neither, "attendee": attendee})
        )


def test_a_spreadsheet_row_becomes_a_profile_and_its_problems_name_the_column() -> None:
    header = ";".join(
        ["legal_name", "country", "sectors"]
        + [f"offer_1_{f}" for f in ("title", "description", "category", "language")]
        + [f"contact_1_{f}" for f in ("name", "email", "language")]
    )
    rows = [
        "Città Verde S.r.l.;IT;ict, energy;Lampioni;Illuminazione intelligente;smart_lighting;it;"
        "Anna;anna@cv.example;it",
        "Bad;IT;ict;Lampioni;x;teleport;it;Anna;not-email;it",
        ";;;;;;;;;",
    ]
    sheet = importer.read(("\n".join([header, *rows])).encode(), "members.csv")
    assert sheet.total == 2  # the empty row does not count
    [(row, company)] = sheet.rows
    assert (
        row == 2
        and company["sectors"] == ["ict", "energy"]
        and company["offers"][0]["category"] == "smart_lighting"
    )
    assert {(p.row, p.column) for p in sheet.problems} == {(3, "offer_1_category"), (3, "contact_1_email")}


def test_a_spreadsheet_must_be_utf8_and_have_a_legal_name_column() -> None:
    with pytest.raises(importer.UnreadableFile, match="UTF-8"):
        importer.read("legal_name\nČvor".encode("cp1250"), "x.csv")
    sheet = importer.read(b"country\nRS\n", "x.csv")
    assert [(p.row, p.column, p.message) for p in sheet.problems] == [
        (1, "legal_name", "required column is missing")
    ]
