"""Each service's consumer handlers, one event at a time, against an in-memory database
(tests/fakes.py): what they keep, what they queue or emit, and what a repeated or late fact
changes. The pipeline around them (inbox, retries, dead letters) is in tests/integration."""

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from c2f_matching import handlers as matching_handlers
from c2f_matching import meetings
from c2f_matching.matcher import Matcher
from c2f_matching.profiles import Rosters, roster_key
from c2f_notifications import handlers as notifications
from c2f_notifications.config import Settings as NotificationSettings
from c2f_notifications.store import OUTGOING, RECIPIENTS
from c2f_registration import partnership
from c2f_reporting import projections
from c2f_shared.events import (
    Attendee,
    ClusterRegistered,
    CompanyErased,
    CompanyRegistered,
    Contact,
    Event,
    EventCreated,
    MatchParty,
    MatchSuggested,
    MeetingRequested,
    Need,
    Offer,
    ParticipantRegistered,
    ParticipantWithdrawn,
    Slot,
)
from c2f_shared.service import Handlers, UnitOfWork
from c2f_shared.service.pipeline import topics_of
from tests.fakes import FakeStore


def company(company_id: str = "acme", cluster_id: str = "k1") -> CompanyRegistered:
    return CompanyRegistered(
        company_id=company_id,
        cluster_id=cluster_id,
        legal_name="Acme",
        country="BG",
        sectors=["ict"],
        offers=[Offer(title="Sensors", description="Air sensors", category="iot", language="en")],
        needs=[Need(title="Finance", description="Seed money", kind="finance", language="en")],
        contacts=[
            Contact(name="Ana", email="ana@acme.example", language="bg", consent="brochure"),
            Contact(name="Boris", email="boris@acme.example", language="bg", consent="matches"),
            Contact(name="Vera", email="vera@acme.example", language="bg", consent="none"),
        ],
    )


def signed_up(
    participant_id: str, event_id: str = "ev1", company_id: str | None = "acme"
) -> ParticipantRegistered:
    return ParticipantRegistered(
        participant_id=participant_id,
        event_id=event_id,
        company_id=company_id,
        cluster_id="k1",
        attendee=Attendee(name="Ana", email="ana@acme.example", language="bg"),
        consent_share_contact=False,
    )


def suggestion(*company_ids: str) -> MatchSuggested:
    parties = tuple(
        MatchParty(participant_id=f"p-{c}", company_id=c, company_name=c.title(), country="BG")
        for c in company_ids
    )
    return MatchSuggested(
        suggestion_id=str(uuid.uuid4()),
        event_id="ev1",
        event_name="Day",
        parties=parties,
        reasons=[],
        score=0.5,
    )


@pytest.mark.parametrize(
    "handlers",
    [
        projections.HANDLERS,
        partnership.HANDLERS,
        notifications.make_handlers(NotificationSettings(), lambda: None),
    ],
    ids=["reporting", "registration", "notifications"],
)
def test_a_consumer_subscribes_to_the_topics_of_the_events_it_handles(
    handlers: Handlers,
) -> None:
    assert set(topics_of(handlers)) == {event_type.TOPIC for event_type in handlers}
    assert all(isinstance(event_type, type) and issubclass(event_type, Event) for event_type in handlers)


# -- reporting ---------------------------------------------------------------------------------


async def test_reporting_keeps_only_the_contacts_that_agreed_to_the_brochure() -> None:
    store = FakeStore(projections.HANDLERS)
    await store.handle(company())
    [kept] = store["companies"].find()
    assert [c["name"] for c in kept["contacts"]] == ["Ana"]


async def test_reporting_drops_a_suggestion_that_arrives_after_its_company_was_erased() -> None:
    store = FakeStore(projections.HANDLERS)
    await store.handle(company("acme"))
    await store.handle(suggestion("acme", "other"))
    assert store["match_suggestions"].count_documents({}) == 1
    await store.handle(CompanyErased(company_id="acme", cluster_id="k1"))
    assert store["match_suggestions"].count_documents({}) == 0 and store["companies"].count_documents({}) == 0
    await store.handle(suggestion("acme", "third"))  # made before the erasure, delivered after
    assert store["match_suggestions"].count_documents({}) == 0


async def test_reporting_counts_people_without_their_contact_data_or_token() -> None:
    store = FakeStore(projections.HANDLERS)
    await store.handle(signed_up("p1"))
    [person] = store["participants"].find()
    assert "attendee" not in person and "access_token_hash" not in person and person["status"] == "registered"
    await store.handle(ParticipantWithdrawn(participant_id="p1", event_id="ev1"))
    assert store["participants"].find_one({"_id": "p1"})["status"] == "withdrawn"


# -- registration ------------------------------------------------------------------------------


async def test_registration_counts_a_sign_up_made_elsewhere_once_and_forgets_it_on_withdrawal() -> None:
    store = FakeStore(partnership.HANDLERS)
    await store.handle(signed_up("p-elsewhere"))
    await store.handle(signed_up("p-elsewhere"))  # the same fact again
    assert store["events"].find_one({"_id": "ev1"})["registered"] == 1
    await store.handle(ParticipantWithdrawn(participant_id="p-elsewhere", event_id="ev1"))
    assert store["events"].find_one({"_id": "ev1"})["registered"] == 0


async def test_registration_does_not_count_its_own_sign_ups_twice() -> None:
    store = FakeStore(partnership.HANDLERS)
    store["participants"].insert_one({"_id": "p-here", "event_id": "ev1"})
    await store.handle(signed_up("p-here"))
    assert store["events"].count_documents({}) == 0


async def test_registration_lists_clusters_registered_elsewhere_as_foreign_and_keeps_its_own() -> None:
    store = FakeStore(partnership.HANDLERS)
    store["clusters"].insert_one({"_id": "mine", "natural_key": "RS:mine", "data": {"name": "Mine"}})
    for cluster_id in ("mine", "theirs"):
        await store.handle(
            ClusterRegistered(
                cluster_id=cluster_id,
                name=cluster_id.title(),
                short_name=cluster_id,
                country="IT",
                sectors=["ict"],
                membership="partner",
            )
        )
    assert store["clusters"].find_one({"_id": "mine"}).get("foreign") is None
    assert store["clusters"].find_one({"_id": "theirs"})["foreign"] is True


# -- notifications -----------------------------------------------------------------------------


async def test_notifications_confirm_a_sign_up_once_and_wake_delivery_after_commit() -> None:
    woken: list[int] = []
    store = FakeStore(notifications.make_handlers(NotificationSettings(), lambda: woken.append(1)))
    await store.handle(signed_up("p1"))
    assert woken == [1]  # once it committed
    await store.handle(signed_up("p1"))  # redelivered (the inbox missed it, e.g. after a rebuild)
    [mail] = store[OUTGOING].find()  # queued once
    assert (mail["kind"], mail["recipient_id"], mail["status"]) == ("registration_confirmed", "p1", "pending")
    assert store[RECIPIENTS].find_one({"_id": "p1"})["email"] == "ana@acme.example"


async def test_notifications_cancel_what_was_queued_for_someone_who_withdrew() -> None:
    store = FakeStore(notifications.make_handlers(NotificationSettings(), lambda: None))
    await store.handle(signed_up("p1"))
    await store.handle(ParticipantWithdrawn(participant_id="p1", event_id="ev1"))
    [mail] = store[OUTGOING].find()
    assert (
        mail["status"] == "cancelled" and store[RECIPIENTS].find_one({"_id": "p1"})["status"] == "withdrawn"
    )


async def test_notifications_show_only_contacts_that_agreed_to_be_shown_to_matches() -> None:
    store = FakeStore(notifications.make_handlers(NotificationSettings(), lambda: None))
    await store.handle(company())
    [kept] = store["companies"].find()
    assert [c["name"] for c in kept["contacts"]] == ["Ana", "Boris"]


async def test_notifications_forget_an_erased_company_and_what_was_published_about_it() -> None:
    store = FakeStore(notifications.make_handlers(NotificationSettings(), lambda: None))
    await store.handle(company())
    await store.handle(signed_up("p1"))
    uow = await store.handle(CompanyErased(company_id="acme", cluster_id="k1"))
    assert store[RECIPIENTS].count_documents({}) == 0 and store[OUTGOING].count_documents({}) == 0
    assert uow.forgotten and "p1" in uow.forgotten[0]["payload"]["$regex"]
    assert store["erasures"].find_one({"_id": "acme"})["participants"] == ["p1"]


async def test_notifications_ignore_a_meeting_fact_that_arrives_after_its_partys_erasure() -> None:
    store = FakeStore(notifications.make_handlers(NotificationSettings(), lambda: None))
    await store.handle(company())
    await store.handle(signed_up("p1"))
    await store.handle(signed_up("p2", company_id="other"))
    await store.handle(CompanyErased(company_id="acme", cluster_id="k1"))
    # Requested by p1 before the erasure, consumed after it (meetings are on another partition).
    await store.handle(
        MeetingRequested(
            meeting_id="mt-1",
            event_id="ev1",
            requested_by="p1",
            parties=["p1", "p2"],
            answers={"p2": "requested"},
            status="requested",
            by="p1",
        )
    )
    for name in (OUTGOING, "timers", "meetings"):
        left = [d for d in store[name].find() if "p1" in str(d)]
        assert left == [], f"{name} names the erased party: {left}"


# -- matching ----------------------------------------------------------------------------------


class WordsEmbedder:
    """Texts as bags of hashed words: the same words, the same direction."""

    model_id = "words"
    dim = 64

    def embed(self, texts: Any, role: Any) -> Any:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                vectors[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def matching_store(rosters: Rosters | None = None) -> FakeStore:
    matcher = Matcher(WordsEmbedder())
    matcher.bind(None)
    return FakeStore(matching_handlers.make_handlers(matcher, rosters or Rosters()))


def firm(
    company_id: str, country: str, *, offers: tuple[str, ...] = (), needs: tuple[str, ...] = ()
) -> CompanyRegistered:
    return CompanyRegistered(
        company_id=company_id,
        cluster_id=f"k-{country}",
        legal_name=company_id.title(),
        country=country,
        sectors=["ict"],
        offers=[Offer(title=t, description=t, category="iot", language="en") for t in offers],
        needs=[Need(title=t, description=t, kind="supplier", category="iot", language="en") for t in needs],
    )


def brokerage_day(event_id: str) -> EventCreated:
    """A B2B event in Sofia, one day long."""
    starts = datetime(2027, 5, 4, 9, tzinfo=UTC)
    return EventCreated(
        event_id=event_id,
        name="Brokerage",
        kind="b2b",
        host_cluster_id="k-BG",
        city="Sofia",
        country="BG",
        venue_timezone="Europe/Sofia",
        starts_at=starts,
        ends_at=starts + timedelta(hours=8),
    )


async def test_matching_suggests_a_pair_once_when_the_second_party_signs_up() -> None:
    rosters = Rosters()
    store = matching_store(rosters)
    await store.handle(brokerage_day("ev1"))
    await store.handle(firm("seeker", "BG", needs=("air quality sensors for city streets",)))
    await store.handle(firm("maker", "ES", offers=("air quality sensors for city streets",)))
    await store.handle(firm("baker", "ES", offers=("fresh bread and pastries every morning",)))
    first = await store.handle(signed_up("p-seeker", company_id="seeker"))
    assert first.emitted == []  # nobody else there yet
    await store.handle(signed_up("p-baker", company_id="baker"))
    second = await store.handle(signed_up("p-maker", company_id="maker"))
    [suggested] = second.emitted
    assert isinstance(suggested, MatchSuggested)
    assert {p.participant_id for p in suggested.parties} == {"p-seeker", "p-maker"}
    again = await store.handle(signed_up("p-maker", company_id="maker"))  # delivered again
    assert again.emitted == [] and store["suggestions"].count_documents({}) == 1
    kept = rosters.get("ev1", roster_key(store["events"].find_one({"_id": "ev1"})))
    assert kept is not None and set(kept.companies) == {"p-seeker", "p-baker", "p-maker"}

    # Another instance signs someone up: the kept roster is two steps behind, so it is read again.
    await store.handle(firm("other", "IT", offers=("air quality sensors for city streets",)))
    store["participants"].insert_one({"_id": "p-other", "event_id": "ev1", "company_id": "other"})
    store["events"].update_one({"_id": "ev1"}, {"$inc": {"roster": 1}})
    await store.handle(firm("late", "GR", needs=("air quality sensors for city streets",)))
    late = await store.handle(signed_up("p-late", company_id="late"))
    partners = {p.participant_id for s in late.emitted if isinstance(s, MatchSuggested) for p in s.parties}
    assert partners >= {"p-late", "p-other", "p-maker"}
    kept = rosters.get("ev1", roster_key(store["events"].find_one({"_id": "ev1"})))
    assert kept is not None and {"p-other", "p-late"} <= set(kept.companies)

    await store.handle(ParticipantWithdrawn(participant_id="p-maker", event_id="ev1"))
    assert store["participants"].find_one({"_id": "p-maker"}) is None
    assert rosters.get("ev1", roster_key(store["events"].find_one({"_id": "ev1"}))) is None

    await store.handle(CompanyErased(company_id="seeker", cluster_id="k-BG"))
    for name in ("companies", "participants", "suggestions", "company_events"):
        left = [d for d in store[name].find() if "seeker" in str(d)]
        assert left == [], f"{name} still names the erased company: {left}"


async def test_a_meeting_asked_for_before_the_event_reached_matching_is_try_again_not_no_such_event() -> None:
    """Events and sign-ups come on topics of their own, so matching may know two participants
    before their event: a meeting request meanwhile is NotYet (503, Retry-After), not NotFound
    (404: "no such event"), and goes through once the event has come."""
    store = matching_store()
    await store.handle(firm("seeker", "BG", needs=("air quality sensors for city streets",)))
    await store.handle(firm("maker", "ES", offers=("air quality sensors for city streets",)))
    await store.handle(signed_up("p-seeker", company_id="seeker"))
    await store.handle(signed_up("p-maker", company_id="maker"))

    async def ask(uow: UnitOfWork) -> tuple[dict[str, Any], bool]:
        requester = store["participants"].find_one({"_id": "p-seeker"})
        return await meetings.request(uow, requester, ["p-maker"], None, "p-seeker")

    with pytest.raises(meetings.NotYet, match="not reached matching yet"):
        await store.transact(ask)
    with pytest.raises(meetings.NotFound, match="no event"):
        await meetings.publish_schedule(store, "ev-never", 1)  # type: ignore[arg-type]  # a runtime's db
    day = brokerage_day("ev1")
    slot = Slot(id="2027-05-04T12:00", starts_at=day.starts_at, ends_at=day.starts_at + timedelta(minutes=20))
    await store.handle(day.model_copy(update={"slots": [slot]}))
    meeting, created = await store.transact(ask)
    assert created and meeting["parties"] == ["p-seeker", "p-maker"]


async def test_a_batch_of_sign_ups_to_one_event_steps_its_roster_once_and_suggests_every_pair() -> None:
    """Sign-ups handled together (one unit of work) count one step of the event's roster (one
    round trip, not one per sign-up); each is suggested those who signed up before it, and the
    roster kept afterwards holds all of them."""
    rosters = Rosters()
    store = matching_store(rosters)
    await store.handle(brokerage_day("ev2"))
    await store.handle(firm("seeker", "BG", needs=("air quality sensors for city streets",)))
    await store.handle(firm("maker", "ES", offers=("air quality sensors for city streets",)))
    await store.handle(firm("other", "IT", offers=("air quality sensors for city streets",)))
    await store.handle(signed_up("p-seeker", event_id="ev2", company_id="seeker"))
    before = store["events"].find_one({"_id": "ev2"})["roster"]

    together = await store.handle_together(
        signed_up("p-maker", event_id="ev2", company_id="maker"),
        signed_up("p-other", event_id="ev2", company_id="other"),
    )

    assert store["events"].find_one({"_id": "ev2"})["roster"] == before + 1
    pairs = {
        frozenset(p.participant_id for p in s.parties)
        for s in together.emitted
        if isinstance(s, MatchSuggested)
    }
    assert {frozenset({"p-seeker", "p-maker"}), frozenset({"p-seeker", "p-other"})} <= pairs
    kept = rosters.get("ev2", roster_key(store["events"].find_one({"_id": "ev2"})))
    assert kept is not None and set(kept.companies) == {"p-seeker", "p-maker", "p-other"}
