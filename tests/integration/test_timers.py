"""Timers on the real database: a reminder is stored (so it survives a restart), moves when
its meeting moves, fires once when due and never for a meeting that was called off; the
digest gathers every suggestion that came meanwhile into one message."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI

from c2f_cli.stack import Stack
from c2f_notifications import handlers, timers
from c2f_notifications.config import Settings
from c2f_notifications.store import OUTGOING, TIMERS
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    Attendee,
    Event,
    EventCreated,
    MatchParty,
    MatchSuggested,
    MeetingCancelled,
    MeetingScheduled,
    ParticipantRegistered,
)
from c2f_shared.service import Runtime, UnitOfWork
from tests.support import isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(infra: Stack) -> AsyncIterator[Runtime]:
    base = isolated_settings(infra, "timers")
    runtime = Runtime(base, service="notifications-test")
    async with runtime.lifespan(FastAPI()):
        yield runtime


def settings(**values: Any) -> Settings:
    return Settings(link_secret="s", **values)


async def deliver(runtime: Runtime, handle: Any, event: Event) -> None:
    envelope = Envelope.wrap(event, producer="test", correlation_id="c")

    async def work(uow: UnitOfWork) -> None:
        await handle[type(event)](event, envelope, uow)

    await runtime.transact(work)


async def people(runtime: Runtime, handle: Any, event_id: str, *pids: str) -> None:
    starts = datetime.now(UTC) + timedelta(days=1)
    await deliver(
        runtime,
        handle,
        EventCreated(
            event_id=event_id,
            name="Day",
            kind="b2b",
            host_cluster_id="h",
            city="Sofia",
            country="BG",
            venue_timezone="Europe/Sofia",
            starts_at=starts,
            ends_at=starts + timedelta(hours=8),
        ),
    )
    for pid in pids:
        attendee = Attendee(name=pid, email=f"{pid}@example.org", language="bg")
        await deliver(
            runtime,
            handle,
            ParticipantRegistered(
                participant_id=pid,
                event_id=event_id,
                company_id=None,
                cluster_id="h",
                attendee=attendee,
                consent_share_contact=False,
            ),
        )


def scheduled(meeting: str, event_id: str, starts: datetime, sequence: int) -> MeetingScheduled:
    return MeetingScheduled(
        meeting_id=meeting,
        event_id=event_id,
        parties=["a", "b"],
        slot_id=starts.strftime("%Y-%m-%dT%H:%M"),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=20),
        table="Table 1",
        sequence=sequence,
        schedule_version=2,
        change="moved" if sequence else "new",
    )


async def reminders(runtime: Runtime) -> list[dict[str, Any]]:
    return await runtime.db[OUTGOING].find({"kind": "reminder"}).to_list(None)


async def test_a_reminder_moves_with_its_meeting_and_fires_once(runtime: Runtime) -> None:
    handle = handlers.make_handlers(settings(reminders="2s"), lambda: None)
    event_id, meeting = str(uuid.uuid4()), f"mt-{uuid.uuid4().hex[:6]}"
    await people(runtime, handle, event_id, "a", "b")
    soon = datetime.now(UTC) + timedelta(seconds=3)
    await deliver(runtime, handle, scheduled(meeting, event_id, soon, 0))
    stored = await runtime.db[TIMERS].find({"kind": "reminder"}).to_list(None)
    assert {t["recipient_id"] for t in stored} == {"a", "b"}, "the reminders are stored, not in memory"
    # The meeting moves an hour later before the reminder is due: the reminder moves too.
    later = soon + timedelta(hours=1)
    await deliver(runtime, handle, scheduled(meeting, event_id, later, 1))
    await asyncio.sleep(1.5)
    await timers.fire_due(runtime)
    assert await reminders(runtime) == [], "not at the old time"
    mine = await runtime.db[TIMERS].find({"kind": "reminder", "data.meeting_id": meeting}).to_list(None)
    assert all(abs(t["due_at"] - (later - timedelta(seconds=2))) < timedelta(milliseconds=1) for t in mine)
    # Moved back to start soon: due again; a fresh loop (a restarted service) fires it once.
    back = datetime.now(UTC) + timedelta(seconds=2.5)
    await deliver(runtime, handle, scheduled(meeting, event_id, back, 2))
    await asyncio.sleep(1)
    assert await timers.fire_due(runtime) == 2
    assert await timers.fire_due(runtime) == 0
    sent = await reminders(runtime)
    assert sorted(r["recipient_id"] for r in sent) == ["a", "b"]
    assert {r["data"]["sequence"] for r in sent} == {2}


async def test_a_cancelled_meeting_is_not_reminded(runtime: Runtime) -> None:
    handle = handlers.make_handlers(settings(reminders="1s"), lambda: None)
    event_id, meeting = str(uuid.uuid4()), f"mt-{uuid.uuid4().hex[:6]}"
    await people(runtime, handle, event_id, "c", "d")
    before = len(await reminders(runtime))
    await deliver(
        runtime, handle, scheduled(meeting, event_id, datetime.now(UTC) + timedelta(seconds=1.5), 0)
    )
    await deliver(
        runtime,
        handle,
        MeetingCancelled(
            meeting_id=meeting,
            event_id=event_id,
            requested_by="a",
            parties=["a", "b"],
            answers={"b": "accepted"},
            status="cancelled",
            by="a",
        ),
    )
    await asyncio.sleep(1)
    await timers.fire_due(runtime)
    assert len(await reminders(runtime)) == before


def suggested(event_id: str, me: str, other: str | None = None) -> MatchSuggested:
    """A suggestion that `me` meets `other` (someone made up if not given)."""
    return MatchSuggested(
        suggestion_id=str(uuid.uuid4()),
        event_id=event_id,
        event_name="Day",
        parties=(
            MatchParty(participant_id=me, company_id="c1", company_name="Me", country="BG"),
            MatchParty(
                participant_id=other or f"q-{uuid.uuid4().hex[:6]}",
                company_id="c2",
                company_name="Them",
                country="ES",
            ),
        ),
        reasons=[],
        score=0.5,
    )


async def test_one_digest_gathers_the_suggestions_that_came_meanwhile(runtime: Runtime) -> None:
    handle = handlers.make_handlers(settings(digest_delay_seconds=0.5), lambda: None)
    event_id = str(uuid.uuid4())
    me = f"p-{uuid.uuid4().hex[:6]}"
    others = [f"q-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    await people(runtime, handle, event_id, me, *others)
    for other in others:
        await deliver(runtime, handle, suggested(event_id, me, other))
    await asyncio.sleep(0.8)
    await timers.fire_due(runtime)
    [digest] = (
        await runtime.db[OUTGOING].find({"kind": "suggestions_digest", "recipient_id": me}).to_list(None)
    )
    assert len(digest["data"]["items"]) == 3
    # The next suggestion waits for the next period (24 h by default), not for 0.5 s.
    timer = await runtime.db[TIMERS].find_one({"_id": f"digest:{me}"})
    assert timer is not None and timer["status"] == "done"


async def test_a_digest_sent_before_the_sign_up_arrived_still_starts_the_period(runtime: Runtime) -> None:
    """Scaled out, a suggestion (one topic) can be handled before its participant's sign-up
    (another topic): the digest goes out once the sign-up arrives, and the period holds."""
    handle = handlers.make_handlers(settings(digest_delay_seconds=0.3), lambda: None)
    event_id, me = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:6]}"
    await deliver(runtime, handle, suggested(event_id, me))  # before anything about `me`
    await asyncio.sleep(0.5)
    assert await timers.fire_due(runtime) >= 1
    await people(runtime, handle, event_id, me)
    await deliver(runtime, handle, suggested(event_id, me))
    digests = await runtime.db[OUTGOING].count_documents({"kind": "suggestions_digest", "recipient_id": me})
    assert digests == 1
    timer = await runtime.db[TIMERS].find_one({"_id": f"digest:{me}"})
    assert timer is not None and timer["status"] == "pending"
    assert timer["due_at"].replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(hours=23)


async def claim_digest(runtime: Runtime, me: str, lease: timedelta) -> dict[str, Any]:
    """The digest timer as an instance claims it to send it (its lease running for `lease`)."""
    claimed = await runtime.db[TIMERS].find_one_and_update(
        {"_id": f"digest:{me}"},
        {"$set": {"status": "firing", "lease_until": datetime.now(UTC) + lease}},
        return_document=True,
    )
    assert claimed is not None
    return claimed


async def test_a_suggestion_arriving_while_the_digest_is_sent_waits_for_the_next_period(
    runtime: Runtime,
) -> None:
    handle = handlers.make_handlers(settings(digest_delay_seconds=0.3), lambda: None)
    event_id, me = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:6]}"
    await people(runtime, handle, event_id, me)
    await deliver(runtime, handle, suggested(event_id, me))
    await asyncio.sleep(0.5)
    # Another instance has claimed the timer and is sending the digest right now.
    claimed = await claim_digest(runtime, me, timedelta(seconds=60))
    await deliver(runtime, handle, suggested(event_id, me))
    await timers.fire(runtime, claimed)  # ... and sends it
    assert await runtime.db[OUTGOING].count_documents({"kind": "suggestions_digest", "recipient_id": me}) == 1
    timer = await runtime.db[TIMERS].find_one({"_id": f"digest:{me}"})
    assert timer is not None and timer["status"] == "pending"
    assert timer["due_at"].replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(hours=23)


async def test_a_digest_whose_sender_was_killed_goes_out_with_what_came_meanwhile(runtime: Runtime) -> None:
    """An instance claimed the digest timer and was killed (kill -9) before it sent it; a
    suggestion came meanwhile: once the lease ran out, one digest goes with both."""
    handle = handlers.make_handlers(settings(digest_delay_seconds=0.3), lambda: None)
    event_id, me = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:6]}"
    await people(runtime, handle, event_id, me)
    await deliver(runtime, handle, suggested(event_id, me))
    await asyncio.sleep(0.5)
    await claim_digest(runtime, me, timedelta(seconds=-1))  # its lease has run out
    await deliver(runtime, handle, suggested(event_id, me))
    assert await timers.fire_due(runtime) >= 1
    [digest] = (
        await runtime.db[OUTGOING].find({"kind": "suggestions_digest", "recipient_id": me}).to_list(None)
    )
    assert len(digest["data"]["items"]) == 2
    timer = await runtime.db[TIMERS].find_one({"_id": f"digest:{me}"})
    assert timer is not None and timer["status"] == "pending"
    assert timer["due_at"].replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(hours=23)


async def test_timers_are_leased_a_few_at_a_time_and_fired_together(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Due timers are leased a few at a time, just before those few fire in one transaction:
    the others are still pending meanwhile (a killed instance holds only the few it was
    firing), one that another instance took is left to it, and one that fails to fire holds
    back none of the others fired with it."""
    ids = [f"slow:{uuid.uuid4()}" for _ in range(6)]
    seen: dict[str, list[str]] = {}

    async def noting(uow: UnitOfWork, timer: dict[str, Any]) -> None:
        others = {t["_id"]: t["status"] async for t in uow.db[TIMERS].find({"_id": {"$in": ids}})}
        seen[timer["_id"]] = [others[i] for i in ids]
        if timer["_id"] == ids[0]:  # meanwhile another instance takes the third one
            await runtime.db[TIMERS].update_one({"_id": ids[2]}, {"$set": {"status": "firing"}})
        if timer["_id"] == ids[4]:
            raise RuntimeError("this timer cannot fire")

    monkeypatch.setattr(timers, "_FIRE", {**timers._FIRE, "slow": noting})
    monkeypatch.setattr(timers, "TOGETHER", 2)
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    await runtime.db[TIMERS].insert_many(
        [
            {"_id": i, "kind": "slow", "recipient_id": "p", "due_at": long_ago + timedelta(seconds=n)}
            | {"status": "pending", "data": {}}
            for n, i in enumerate(ids)
        ]
    )

    assert await timers.fire_due(runtime) == 4

    # Two at a time: the first two fired together, the rest still pending (the third, taken
    # by another instance outside this transaction, still looks pending in it).
    assert seen[ids[0]] == ["firing", "firing", "pending", "pending", "pending", "pending"]
    assert seen[ids[1]] == ["firing", "firing", "pending", "pending", "pending", "pending"]
    # The third was not leased here, so not fired; the fourth fired alone.
    assert ids[2] not in seen
    assert seen[ids[3]] == ["done", "done", "firing", "firing", "pending", "pending"]
    # The fifth failed; the sixth, leased with it, fired on its own after all.
    assert seen[ids[5]] == ["done", "done", "firing", "done", "firing", "firing"]
    states = {t["_id"]: t["status"] async for t in runtime.db[TIMERS].find({"_id": {"$in": ids}})}
    assert [states[i] for i in ids] == ["done", "done", "firing", "done", "firing", "done"]


async def test_timers_fire_a_round_at_a_time_each_transaction_bounded_not_the_round(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of digests can fall due together. The delivery loop fires them a round
    (DUE_MAX) at a time, claiming messages between rounds; each transaction is bounded by
    WAIT_S, not the round: a round that took longer than that once failed every timer after
    its first seconds ("operation would exceed time limit"), and they waited a lease for the
    next try."""

    async def slow(uow: UnitOfWork, timer: dict[str, Any]) -> None:
        await asyncio.sleep(0.3)

    monkeypatch.setattr(timers, "_FIRE", {**timers._FIRE, "slow": slow})
    monkeypatch.setattr(timers, "DUE_MAX", 4)
    monkeypatch.setattr(timers, "TOGETHER", 2)
    monkeypatch.setattr(timers, "WAIT_S", 1.0)  # a transaction of two: 0.6 s; a round: 1.2 s
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    ids = [f"slow-{n}" for n in range(6)]
    await runtime.db[TIMERS].insert_many(
        [
            {"_id": i, "kind": "slow", "recipient_id": "p", "due_at": long_ago + timedelta(seconds=n)}
            | {"status": "pending", "data": {}}
            for n, i in enumerate(ids)
        ]
    )

    assert await timers.fire_some(runtime) == (4, True)  # the four earliest; more are due
    states = {t["_id"]: t["status"] async for t in runtime.db[TIMERS].find({"_id": {"$in": ids}})}
    assert [states[i] for i in ids] == ["done"] * 4 + ["pending"] * 2
    assert await timers.fire_some(runtime) == (2, False)
    assert await timers.fire_some(runtime) == (0, False)
    states = {t["_id"]: t["status"] async for t in runtime.db[TIMERS].find({"_id": {"$in": ids}})}
    assert set(states.values()) == {"done"}


async def test_a_timer_that_can_never_fire_is_set_aside_with_the_reason(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer that fails to fire (here a kind this version does not know, as one stored by
    another version would be) is tried again once its lease runs out, MAX_FAILURES times, then
    set aside as failed with the reason; the others fire as usual meanwhile."""
    fired: list[str] = []

    async def noting(uow: UnitOfWork, timer: dict[str, Any]) -> None:
        fired.append(timer["_id"])

    monkeypatch.setattr(timers, "_FIRE", {**timers._FIRE, "noted": noting})
    monkeypatch.setattr(timers, "LEASE", timedelta(0))  # tried again at the next round
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    poison, fine = f"unknown:{uuid.uuid4()}", f"noted:{uuid.uuid4()}"
    await runtime.db[TIMERS].insert_many(
        [
            {"_id": i, "kind": kind, "recipient_id": "p", "due_at": long_ago, "status": "pending", "data": {}}
            for i, kind in ((poison, "no_such_kind"), (fine, "noted"))
        ]
    )

    for _ in range(timers.MAX_FAILURES - 1):
        await timers.fire_due(runtime)
        timer = await runtime.db[TIMERS].find_one({"_id": poison})
        assert timer is not None and timer["status"] == "firing", "tried again once its lease runs out"
    await timers.fire_due(runtime)
    await timers.fire_due(runtime)
    timer = await runtime.db[TIMERS].find_one({"_id": poison})

    assert timer is not None and timer["status"] == "failed" and timer["failures"] == timers.MAX_FAILURES
    assert timer["reason"] == f"{timers.MAX_FAILURES} tries failed; last: KeyError: 'no_such_kind'"
    assert fired == [fine], "the other fired once"
