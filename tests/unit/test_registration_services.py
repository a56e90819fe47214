"""Registration's service layer decides without HTTP: who may act, what is served here, what
is invalid and why. Small fakes of the database stand in where a decision needs a read; none of
these cases may reach a transaction."""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from c2f_registration import api_keys, clusters, companies, events, importer, participants, store
from c2f_registration.api.companies import new_out
from c2f_registration.api_keys import OPERATOR, Principal
from c2f_registration.errors import (
    AlreadyRegistered,
    CapacityReached,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RegistrationClosed,
)
from c2f_registration.schemas import ClusterIn, CompanyIn, CompanyOut, EventFields, ParticipantIn
from c2f_shared.events import Attendee, ParticipantRegistered
from c2f_shared.service import Runtime
from tests.fakes import CountingStore

DTI, ACCLIMA = "cluster-dti", "cluster-acclima"
DTI_KEY = Principal(cluster_id=DTI)


class FakeCollection:
    """What the services read from a collection: `find_one` by equality on top-level fields."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.reads = 0

    async def find_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        self.reads += 1
        await asyncio.sleep(0)  # a read takes a moment, as on a database
        return next((d for d in self.docs if all(d.get(k) == v for k, v in query.items())), None)


class FakeRuntime:
    """The runtime's database and settings; any transaction fails the test."""

    def __init__(self, **collections: list[dict[str, Any]]) -> None:
        self.settings = SimpleNamespace(mongo_db=f"fake_{uuid.uuid4().hex}")
        self.collections = {name: FakeCollection(docs) for name, docs in collections.items()}

    @property
    def db(self) -> dict[str, FakeCollection]:
        return self.collections

    async def transact(self, work: Callable[[Any], Awaitable[Any]], correlation_id: str | None = None) -> Any:
        raise AssertionError("this decision must not reach a transaction")


def runtime(**collections: list[dict[str, Any]]) -> Runtime:
    defaults: dict[str, list[dict[str, Any]]] = {
        store.CLUSTERS: [{"_id": DTI, "data": {}}, {"_id": ACCLIMA, "foreign": True, "data": {}}],
        store.COMPANIES: [],
        store.EVENTS: [],
    }
    return cast(Runtime, FakeRuntime(**{**defaults, **collections}))


def reads(rt: Runtime, collection: str) -> int:
    return cast(FakeRuntime, rt).collections[collection].reads


def company(cluster_id: str, **changes: Any) -> CompanyIn:
    return CompanyIn.model_validate(
        {
            "cluster_id": cluster_id,
            "legal_name": "Sensores Bizkaia S.L.",
            "country": "ES",
            "sectors": ["ict"],
            **changes,
        }
    )


def event_doc(**changes: Any) -> dict[str, Any]:
    starts = datetime(2027, 3, 16, 9, tzinfo=UTC)
    data = {
        "kind": "b2b",
        "name": "Smart mobility B2B",
        "host_cluster_id": DTI,
        "city": "Sofia",
        "country": "BG",
        "venue_timezone": "Europe/Sofia",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=8)).isoformat(),
        "registration_deadline": None,
    }
    return {"_id": "event-1", "data": data, "revision": 1, "slots": [{"id": "2027-03-16T10:00"}], **changes}


# -- who may act ------------------------------------------------------------------------------


async def test_a_key_registers_members_of_its_own_cluster_only() -> None:
    rt = runtime()
    with pytest.raises(Forbidden, match="acts only for its own cluster"):
        await companies.register(rt, DTI_KEY, company(ACCLIMA), "c")
    assert reads(rt, store.CLUSTERS) == 0  # refused before any read


async def test_only_the_operator_registers_clusters_and_signs_agreements() -> None:
    body = ClusterIn.model_validate({"name": "DTI", "short_name": "DTI", "country": "BG", "sectors": ["ict"]})
    with pytest.raises(Forbidden, match="only the partnership's operator"):
        await clusters.register(runtime(), DTI_KEY, body, frozenset(), "c")


async def test_another_clusters_member_is_not_found_rather_than_forbidden() -> None:
    rt = runtime(**{store.COMPANIES: [{"_id": "co-1", "data": {"cluster_id": ACCLIMA}}]})
    with pytest.raises(NotFound, match="no company 'co-1'"):
        await companies.visible(rt, DTI_KEY, "co-1")
    assert (await companies.visible(rt, OPERATOR, "co-1"))["_id"] == "co-1"


# -- what is served here ----------------------------------------------------------------------


async def test_a_company_of_a_cluster_not_served_here_is_invalid_and_names_the_field() -> None:
    for cluster_id in (ACCLIMA, "nobody"):  # served by another instance; not known at all
        with pytest.raises(Invalid) as refused:
            await companies.register(runtime(), OPERATOR, company(cluster_id), "c")
        assert refused.value.problems == [
            {
                "loc": ("body", "cluster_id"),
                "msg": f"unknown cluster (served by this instance) {cluster_id!r}",
                "type": "value_error.unknown",
            }
        ]


async def test_a_cluster_found_served_here_is_not_read_again() -> None:
    rt = runtime()
    assert await store.serves(rt, DTI) and await store.serves(rt, DTI)
    assert reads(rt, store.CLUSTERS) == 1
    assert not await store.serves(rt, ACCLIMA) and not await store.serves(rt, ACCLIMA)
    assert reads(rt, store.CLUSTERS) == 3  # a foreign cluster is asked about each time


def test_an_instance_for_some_clusters_registers_only_those() -> None:
    clusters.served_here("DTI", frozenset())  # serves every cluster
    clusters.served_here("dti", frozenset({"dti"}))
    with pytest.raises(Invalid) as refused:
        clusters.served_here("Acclima", frozenset({"dti", "hamac"}))
    assert refused.value.problems[0]["loc"] == ("body", "short_name")
    assert refused.value.problems[0]["msg"] == "this registration instance serves only: dti, hamac"


# -- events and sign-ups ----------------------------------------------------------------------


async def test_an_event_hosted_elsewhere_is_changed_there() -> None:
    rt = runtime(**{store.EVENTS: [event_doc(foreign=True)]})
    with pytest.raises(Conflict, match="hosted by another registration instance"):
        await events.update(rt, OPERATOR, "event-1", {"name": "Renamed"}, "c")


async def test_only_the_host_changes_its_event_and_a_bad_change_names_its_field() -> None:
    rt = runtime(**{store.EVENTS: [event_doc()]})
    with pytest.raises(Forbidden):
        await events.update(rt, Principal(cluster_id=ACCLIMA), "event-1", {"name": "Renamed"}, "c")
    with pytest.raises(Invalid) as refused:
        await events.update(rt, DTI_KEY, "event-1", {"ends_at": "2027-03-16T08:00:00+00:00"}, "c")
    assert [p["loc"][0] for p in refused.value.problems] == ["body"]
    assert "ends_at must be after starts_at" in refused.value.problems[0]["msg"]


async def test_a_count_of_sign_ups_without_its_event_is_no_event() -> None:
    rt = runtime(**{store.EVENTS: [{"_id": "event-2", "registered": 3}]})
    with pytest.raises(NotFound, match="no event 'event-2'"):
        await events.get(rt, "event-2")


def test_who_signs_up_depends_on_the_kind_of_event() -> None:
    attendee = {"name": "Elena Ortiz", "email": "elena@sensores.example", "language": "es"}
    by_company = ParticipantIn.model_validate({"company_id": "co-1", "attendee": attendee})
    by_delegation = ParticipantIn.model_validate({"delegation_of": DTI, "attendee": attendee})
    b2b, c2c = event_doc(), event_doc(data={**event_doc()["data"], "kind": "c2c"})
    assert participants.party_of(b2b, by_company) == ("company", "co-1")
    assert participants.party_of(c2c, by_delegation) == ("cluster", DTI)
    with pytest.raises(Invalid) as refused:
        participants.party_of(c2c, by_company)
    assert refused.value.problems[0]["loc"] == ("body", "company_id")
    with pytest.raises(Invalid) as refused:
        participants.party_of(b2b, by_delegation)
    assert refused.value.problems[0]["loc"] == ("body", "delegation_of")


async def test_a_key_cannot_sign_up_another_clusters_member_nor_learn_that_it_exists() -> None:
    rt = runtime(
        **{
            store.EVENTS: [event_doc()],
            store.COMPANIES: [{"_id": "co-1", "data": {"cluster_id": ACCLIMA}}],
        }
    )
    attendee = {"name": "Elena Ortiz", "email": "elena@sensores.example", "language": "es"}
    body = ParticipantIn.model_validate({"company_id": "co-1", "attendee": attendee})
    with pytest.raises(Invalid) as refused:
        await participants.sign_up(rt, DTI_KEY, "event-1", body, "c")
    assert refused.value.problems[0]["msg"] == "unknown company 'co-1'"


def test_availability_names_only_the_events_slots() -> None:
    participants.check_slots(event_doc(), ["2027-03-16T10:00"])
    participants.check_slots(event_doc(), None)
    with pytest.raises(Invalid) as refused:
        participants.check_slots(event_doc(), ["2027-03-16T10:00", "2027-03-17T10:00"])
    assert refused.value.problems[0]["loc"] == ("body", "availability")
    assert refused.value.problems[0]["msg"] == "not slots of this event: ['2027-03-17T10:00']"


def test_sign_ups_close_at_the_deadline() -> None:
    deadline = datetime(2027, 3, 1, 12, tzinfo=UTC)
    event = event_doc(data={**event_doc()["data"], "registration_deadline": deadline.isoformat()})
    participants.check_open(event, deadline)
    participants.check_open(event_doc(), deadline + timedelta(days=365))  # no deadline
    with pytest.raises(RegistrationClosed, match="registration closed at 2027-03-01T12:00:00"):
        participants.check_open(event, deadline + timedelta(seconds=1))


def test_a_patch_that_breaks_a_profile_names_each_field_under_the_body() -> None:
    with pytest.raises(Invalid) as refused:
        companies.merged(EventFields, {"kind": "b2b", "name": ""})
    locs = {problem["loc"] for problem in refused.value.problems}
    assert ("body", "name") in locs and ("body", "starts_at") in locs


def test_the_answer_to_a_new_company_is_company_outs_json() -> None:
    profile = {
        **importer_example_fields(),
        "cluster_id": DTI,
        "website": "HTTPS://Sensores.Example",
        "contacts": [{"name": "Elena", "email": "Elena.Ortiz@Sensores.Example", "language": "es"}],
    }
    data = CompanyIn.model_validate(profile).model_dump(mode="json")
    now = datetime.now(UTC)
    doc = {"_id": "co-1", "data": data, "revision": 1, "created_at": now, "updated_at": now}
    answer = new_out(store.Stored(id="co-1", data=data, created=True, doc=doc))
    expected = CompanyOut(**data, id="co-1", revision=1, created=True, created_at=now, updated_at=now)
    assert answer.status_code == 201
    assert json.loads(bytes(answer.body)) == json.loads(expected.model_dump_json())


def importer_example_fields() -> dict[str, Any]:
    sheet = importer.read(importer.template_csv(), "template.csv")
    assert not sheet.problems
    return sheet.rows[0][1]


async def test_requests_arriving_together_with_one_key_read_it_once() -> None:
    key_id, secret = uuid.uuid4().hex[:16], "s3cret"
    stored = {"_id": key_id, "hash": api_keys.digest(secret), "cluster_id": DTI, "revoked_at": None}
    rt = runtime(**{api_keys.API_KEYS: [stored]})
    token = f"{api_keys.KEY_PREFIX}.{key_id}.{secret}"
    found = await asyncio.gather(*(api_keys.holder(rt, token) for _ in range(50)))
    assert found == [DTI_KEY] * 50
    assert reads(rt, api_keys.API_KEYS) == 1
    with pytest.raises(api_keys.UnknownKey):  # the same key id with another secret
        await api_keys.holder(rt, f"{api_keys.KEY_PREFIX}.{key_id}.guess")


def waiting_seat(event_id: str, company_id: str, capacity: int | None = None) -> Any:
    """A sign-up of `company_id` to `event_id`, waiting for the event's turn."""
    participant_id = f"p-{company_id}"
    return participants._Seat(
        doc={"_id": participant_id, "natural_key": f"{event_id}:company:{company_id}", "event_id": event_id},
        fact=ParticipantRegistered(
            participant_id=participant_id,
            event_id=event_id,
            company_id=company_id,
            cluster_id=DTI,
            attendee=Attendee(name="Ana", email="ana@example.org", language="en"),
            consent_share_contact=False,
        ),
        capacity=capacity,
        correlation_id=f"request-{company_id}",
        trace={},
        taken=asyncio.get_running_loop().create_future(),
    )


def sign_up_store(registered: int = 0) -> CountingStore:
    db = CountingStore()
    db["participants"].create_index("natural_key", unique=True)
    db["events"].insert_one({"_id": "ev", "registered": registered, "data": {}})
    return db


async def test_sign_ups_waiting_together_are_seated_in_one_transaction() -> None:
    db = sign_up_store()
    group = [waiting_seat("ev", c) for c in ("a", "b", "c")]
    await participants._seat(cast(Runtime, db), "ev", group)
    assert db.transactions == 1
    assert [(await s.taken)["_id"] for s in group] == ["p-a", "p-b", "p-c"]
    assert db["events"].find_one({"_id": "ev"})["registered"] == 3
    assert db["participants"].count_documents({}) == 3


async def test_a_duplicate_or_a_place_short_seats_each_on_its_own_with_its_own_answer() -> None:
    db = sign_up_store()
    await participants._seat(cast(Runtime, db), "ev", [waiting_seat("ev", "a")])
    group = [waiting_seat("ev", "b"), waiting_seat("ev", "a"), waiting_seat("ev", "c")]
    group[1].doc["_id"] = "p-a-again"
    await participants._seat(cast(Runtime, db), "ev", group)
    assert (await group[0].taken)["_id"] == "p-b"
    with pytest.raises(AlreadyRegistered, match="as participant p-a"):
        await group[1].taken
    assert (await group[2].taken)["_id"] == "p-c"
    assert db["events"].find_one({"_id": "ev"})["registered"] == 3

    full = sign_up_store(registered=1)
    group = [waiting_seat("ev", c, capacity=2) for c in ("x", "y")]
    await participants._seat(cast(Runtime, full), "ev", group)
    assert (await group[0].taken)["_id"] == "p-x"
    with pytest.raises(CapacityReached):
        await group[1].taken
    assert full["events"].find_one({"_id": "ev"})["registered"] == 2
    assert full["participants"].count_documents({}) == 1


def test_a_name_pasted_over_two_lines_is_kept_on_one() -> None:
    pasted = company(DTI, legal_name="Sensores Bizkaia\r\n  S.L.", city="Bilbao\t(Bizkaia)")
    assert (pasted.legal_name, pasted.city) == ("Sensores Bizkaia S.L.", "Bilbao (Bizkaia)")
    spaced = company(DTI, legal_name="Sensores  Bizkaia S.L.")
    assert spaced.legal_name == "Sensores  Bizkaia S.L.", "other text stays exactly as sent"
