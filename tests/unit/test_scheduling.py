"""The schedule: valid against every rule on random instances (hypothesis), as good as the
proven optimum on small ones, and stable when the published schedule changes."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2f_matching.scheduling import (
    Instance,
    Meeting,
    Schedule,
    first_come_first_served,
    greedy,
    idle_slots,
    moved,
    plan,
    violations,
    weighted,
)
from c2f_matching.scheduling.bound import capacity_bound, lp_bound
from c2f_matching.scheduling.instances import generate
from c2f_matching.scheduling.local_search import improve
from c2f_matching.scheduling.solver import maximise_meetings, values, worth


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    slots = draw(st.integers(1, 8))
    days = draw(st.integers(1, min(2, slots)))
    people = [f"p{i}" for i in range(draw(st.integers(2, 10)))]
    per_day = -(-slots // days)
    meetings = []
    for i in range(draw(st.integers(0, 25))):
        size = draw(st.integers(2, min(3, len(people))))
        parties = tuple(draw(st.permutations(people))[:size])
        previous = draw(st.none() | st.integers(0, slots - 1))
        meetings.append(Meeting(f"m{i}", parties, draw(st.integers(1, 5)), previous, None))
    available = {
        p: frozenset(draw(st.sets(st.integers(0, slots - 1)))) for p in draw(st.sets(st.sampled_from(people)))
    }
    return Instance(
        day=tuple(min(s // per_day, days - 1) for s in range(slots)),
        tables=draw(st.integers(1, 4)),
        meetings=tuple(meetings),
        available=available,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_every_schedule_produced_is_valid(instance: Instance) -> None:
    for schedule in (first_come_first_served(instance), greedy(instance), plan(instance, seconds=2)):
        assert violations(instance, schedule) == [], schedule.method
    best = plan(instance, seconds=2)
    assert set(best.table_of) == set(best.slot_of)
    # The solver never does worse than the greedy start it was given.
    assert weighted(instance, best.slot_of) >= weighted(instance, greedy(instance).slot_of) or any(
        m.previous_slot is not None for m in instance.meetings
    )


def test_violations_name_each_broken_rule() -> None:
    instance = Instance(
        day=(0, 0),
        tables=1,
        meetings=(Meeting("a", ("x", "y")), Meeting("b", ("x", "z")), Meeting("c", ("v", "w"))),
        available={"z": frozenset({1})},
    )
    bad = Schedule({"a": 0, "b": 0, "c": 1}, {"a": 0, "b": 0, "c": 3})
    problems = " | ".join(violations(instance, bad))
    assert "x is already meeting in slot 0" in problems
    assert "z is not available in slot 0" in problems
    assert "slot 0: 2 meetings for 1 tables" in problems
    assert "table 3 does not exist" in problems
    assert "table 0 in slot 0 is taken" in problems


def test_the_plan_reaches_the_proven_optimum_at_the_brief_size() -> None:
    instance = generate(70, 140, 6, seed=3)
    best = plan(instance, seconds=10)
    exact = maximise_meetings(instance, seconds=30)
    assert exact is not None and exact.optimal
    assert weighted(instance, best.slot_of) == exact.value
    # ...and it beats first-come-first-served booking, on meetings and on waiting.
    fcfs = first_come_first_served(instance)
    assert weighted(instance, best.slot_of) > weighted(instance, fcfs.slot_of)
    assert idle_slots(instance, best.slot_of) < idle_slots(instance, fcfs.slot_of)


def test_idle_slots_count_waiting_between_meetings_but_not_unavailable_slots() -> None:
    instance = Instance(
        day=(0, 0, 0, 0, 1, 1),
        tables=5,
        meetings=(Meeting("a", ("x", "y")), Meeting("b", ("x", "z")), Meeting("c", ("x", "w"))),
        available={"y": frozenset({0, 2, 3, 4}), "x": frozenset({0, 1, 3, 4, 5})},
    )
    # x meets at 0 and 3: slot 1 is idle, slot 2 x is unavailable, not waiting.
    # y, z and w meet once. x's meeting on day 1 does not bridge days.
    assert idle_slots(instance, {"a": 0, "b": 3, "c": 4}) == 1
    assert plan(instance, seconds=2).slot_of.keys() == {"a", "b", "c"}
    assert idle_slots(instance, plan(instance, seconds=2).slot_of) == 0


def _published(instance: Instance) -> Instance:
    """The instance as it is after publishing `plan(instance)`."""
    schedule = plan(instance, seconds=5)
    return replace(
        instance,
        meetings=tuple(
            replace(m, previous_slot=schedule.slot_of.get(m.id), previous_table=schedule.table_of.get(m.id))
            for m in instance.meetings
        ),
    )


def test_a_cancellation_moves_no_other_meeting_unless_that_lets_more_in() -> None:
    before = _published(generate(40, 80, 6, seed=5))
    cancelled = next(m for m in before.meetings if m.previous_slot is not None)
    after = replace(before, meetings=tuple(m for m in before.meetings if m.id != cancelled.id))
    schedule = plan(after, seconds=5)
    kept = {m.id: m.previous_slot for m in after.meetings if m.previous_slot is not None}
    if moved(after, schedule.slot_of):
        # Moving a published meeting is only worth it if the freed slot lets a waiting one in.
        assert weighted(after, schedule.slot_of) > weighted(after, kept)
    # Meetings that stay in their slot stay at their table.
    assert all(
        schedule.table_of[m.id] == m.previous_table
        for m in after.meetings
        if m.previous_slot is not None and schedule.slot_of.get(m.id) == m.previous_slot
    )


def test_a_late_acceptance_is_fitted_in_without_dropping_a_published_meeting() -> None:
    before = _published(generate(30, 50, 6, seed=7))
    late = Meeting("late", ("p0001", "p0002"), weight=9)
    after = replace(before, meetings=(*before.meetings, late))
    schedule = plan(after, seconds=5)
    published = {m.id for m in before.meetings if m.previous_slot is not None}
    assert published <= schedule.slot_of.keys()
    assert len(moved(after, schedule.slot_of)) <= 2


def test_a_party_becoming_unavailable_moves_only_its_meetings() -> None:
    before = _published(generate(30, 60, 8, seed=11))
    meeting = next(m for m in before.meetings if m.previous_slot is not None)
    who = meeting.parties[0]
    slots = frozenset(range(before.slots)) - {meeting.previous_slot}
    after = replace(before, available={**before.available, who: slots & before.available.get(who, slots)})
    schedule = plan(after, seconds=5)
    assert violations(after, schedule) == []
    assert schedule.slot_of.get(meeting.id) != meeting.previous_slot
    others = [mid for mid in moved(after, schedule.slot_of) if mid != meeting.id]
    touched = {p for m in after.meetings if m.id in others for p in m.parties}
    assert len(others) <= 2, (others, touched)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_local_search_and_the_bound_hold_on_any_instance(instance: Instance) -> None:
    """Local search returns a valid schedule worth at least its start; the bound is above
    every schedule, the exact one included."""
    value = values(instance)
    start = greedy(instance).slot_of
    bound = lp_bound(instance, value)
    assert bound is not None
    searched = improve(instance, value, start, seconds=0.2, target=bound)
    assert not violations(instance, Schedule(searched))
    assert bound >= worth(instance, searched) >= worth(instance, start)
    assert capacity_bound(instance, value) >= worth(instance, searched)


def test_a_busy_event_reaches_the_optimum_where_greedy_and_booking_order_fall_short() -> None:
    """Requests per participant near the number of slots, a few firms wanted by many: greedy
    and first-come-first-served stay well below the optimum; local search reaches it, and
    the bound proves it."""
    instance = generate(40, 240, 8, tables=16, seed=1, skew=1.0, weighted=False)
    value = values(instance)
    start = greedy(instance).slot_of
    booked = weighted(instance, first_come_first_served(instance).slot_of)
    exact = maximise_meetings(instance, 20, hint=start)
    assert exact is not None and exact.optimal
    assert weighted(instance, start) < booked < exact.value
    assert lp_bound(instance, value) == exact.value
    assert weighted(instance, improve(instance, value, start, seconds=5, target=exact.value)) == exact.value
    planned = plan(instance, seconds=4)
    assert weighted(instance, planned.slot_of) == exact.value and planned.proven_optimal
    assert planned.bound == exact.value


def test_local_search_keeps_published_meetings_unless_more_fits_otherwise() -> None:
    """A published meeting is worth more than any new one, so the search never gives it up
    for a single other meeting."""
    published = Meeting("kept", ("a", "b"), 1, previous_slot=0)
    rival = Meeting("rival", ("a", "c"), 3)
    instance = Instance(day=(0,), tables=1, meetings=(published, rival))
    value = values(instance)
    assert improve(instance, value, {"rival": 0}, seconds=0.5) == {"kept": 0}
    assert improve(instance, value, {"kept": 0}, seconds=0.5) == {"kept": 0}
