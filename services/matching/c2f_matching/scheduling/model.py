"""The B2B meeting scheduling problem, as data: slots, tables, who is available when, and the
accepted meetings to place; and what makes a schedule valid, and how good it is.

Slots are numbered 0..n-1 in time order; `day[s]` says which day slot s belongs to. Two
slots are consecutive for a participant when they are neighbours on the same day (a break
between them is not idle time: nobody could meet then)."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Meeting:
    id: str
    parties: tuple[str, ...]
    weight: int = 1  # priority: mutual interest and score
    previous_slot: int | None = None  # where the published schedule had it
    previous_table: int | None = None


@dataclass(frozen=True)
class Instance:
    day: tuple[int, ...]  # day index of each slot, non-decreasing
    tables: int  # meetings that can run at once (tables, or virtual rooms)
    meetings: tuple[Meeting, ...]
    # Slots each participant can meet in; a participant not listed is available throughout.
    available: Mapping[str, frozenset[int]] = field(default_factory=dict)

    @property
    def slots(self) -> int:
        return len(self.day)

    def free_slots(self, meeting: Meeting) -> list[int]:
        """The slots in which every party of `meeting` is available, in time order."""
        allowed = set(range(self.slots))
        for party in meeting.parties:
            if party in self.available:
                allowed &= self.available[party]
        return sorted(allowed)

    def participants(self) -> list[str]:
        return sorted({p for m in self.meetings for p in m.parties})


@dataclass
class Schedule:
    slot_of: dict[str, int]  # meeting id → slot, for the meetings placed
    table_of: dict[str, int] = field(default_factory=dict)  # meeting id → table 0..tables-1
    method: str = ""
    seconds: float = 0.0
    proven_optimal: bool = False
    bound: float | None = None  # best proven upper bound on the weighted meetings, if known


def violations(instance: Instance, schedule: Schedule) -> list[str]:
    """Every way `schedule` breaks the rules of `instance` (empty: valid)."""
    problems = []
    meetings = {m.id: m for m in instance.meetings}
    busy: dict[tuple[str, int], str] = {}
    per_slot: dict[int, int] = defaultdict(int)
    for mid, slot in schedule.slot_of.items():
        meeting = meetings.get(mid)
        if meeting is None:
            problems.append(f"{mid}: not an accepted meeting of this instance")
            continue
        if not 0 <= slot < instance.slots:
            problems.append(f"{mid}: slot {slot} does not exist")
            continue
        per_slot[slot] += 1
        for party in meeting.parties:
            if party in instance.available and slot not in instance.available[party]:
                problems.append(f"{mid}: {party} is not available in slot {slot}")
            other = busy.get((party, slot))
            if other is not None:
                problems.append(f"{mid}: {party} is already meeting in slot {slot} ({other})")
            busy[(party, slot)] = mid
    for slot, count in per_slot.items():
        if count > instance.tables:
            problems.append(f"slot {slot}: {count} meetings for {instance.tables} tables")
    tables_used: dict[tuple[int, int], str] = {}
    for mid, table in schedule.table_of.items():
        if mid not in schedule.slot_of:
            problems.append(f"{mid}: has a table but no slot")
            continue
        if not 0 <= table < instance.tables:
            problems.append(f"{mid}: table {table} does not exist")
        key = (schedule.slot_of[mid], table)
        if key in tables_used:
            problems.append(f"{mid}: table {table} in slot {key[0]} is taken by {tables_used[key]}")
        tables_used[key] = mid
    if schedule.table_of and set(schedule.table_of) != set(schedule.slot_of):
        problems.append("some placed meetings have no table")
    return problems


def weighted(instance: Instance, slot_of: Mapping[str, int]) -> int:
    return sum(m.weight for m in instance.meetings if m.id in slot_of)


def idle_slots(instance: Instance, slot_of: Mapping[str, int]) -> int:
    """Slots participants wait through: free, available slots between their first and last
    meeting of a day (what Bofill et al. minimise as idle time)."""
    busy: dict[str, set[int]] = defaultdict(set)
    for meeting in instance.meetings:
        if meeting.id in slot_of:
            for party in meeting.parties:
                busy[party].add(slot_of[meeting.id])
    idle = 0
    for party, slots in busy.items():
        by_day: dict[int, list[int]] = defaultdict(list)
        for slot in slots:
            by_day[instance.day[slot]].append(slot)
        allowed = instance.available.get(party)
        for day_slots in by_day.values():
            for s in range(min(day_slots), max(day_slots)):
                if s not in slots and (allowed is None or s in allowed):
                    idle += 1
    return idle


def moved(instance: Instance, slot_of: Mapping[str, int]) -> list[str]:
    """Meetings of the published schedule that are now in another slot or not placed."""
    return [
        m.id
        for m in instance.meetings
        if m.previous_slot is not None and slot_of.get(m.id) != m.previous_slot
    ]


def assign_tables(instance: Instance, slot_of: Mapping[str, int]) -> dict[str, int]:
    """A table for each placed meeting: the one it had, if it stays in its slot and the table
    is free; otherwise the lowest free one."""
    meetings = {m.id: m for m in instance.meetings}
    taken: dict[int, set[int]] = defaultdict(set)
    table_of: dict[str, int] = {}
    for mid, slot in slot_of.items():
        m = meetings[mid]
        if m.previous_slot == slot and m.previous_table is not None and m.previous_table not in taken[slot]:
            table_of[mid] = m.previous_table
            taken[slot].add(m.previous_table)
    for mid, slot in sorted(slot_of.items(), key=lambda item: item[0]):
        if mid not in table_of:
            table = next(t for t in range(instance.tables) if t not in taken[slot])
            table_of[mid] = table
            taken[slot].add(table)
    return table_of


def party_load(meetings: Iterable[Meeting]) -> dict[str, int]:
    load: dict[str, int] = defaultdict(int)
    for m in meetings:
        for p in m.parties:
            load[p] += 1
    return load
