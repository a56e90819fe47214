"""Fast schedules without a solver: first-come-first-served (what booking tools do) and a
greedy, where local search starts; and `compact`, which closes gaps in participants' days."""

import time
from collections import defaultdict

from c2f_matching.scheduling.model import Instance, Meeting, Schedule, party_load


class _Board:
    """Who is busy when, and how many tables each slot has left."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.busy: dict[str, set[int]] = defaultdict(set)
        self.used = [0] * instance.slots
        self.slot_of: dict[str, int] = {}

    def fits(self, meeting: Meeting, slot: int) -> bool:
        return self.used[slot] < self.instance.tables and all(
            slot not in self.busy[p] for p in meeting.parties
        )

    def place(self, meeting: Meeting, slot: int) -> None:
        self.slot_of[meeting.id] = slot
        self.used[slot] += 1
        for p in meeting.parties:
            self.busy[p].add(slot)

    def lift(self, meeting: Meeting) -> None:
        slot = self.slot_of.pop(meeting.id)
        self.used[slot] -= 1
        for p in meeting.parties:
            self.busy[p].discard(slot)

    def added_idle(self, meeting: Meeting, slot: int) -> int:
        """How much waiting placing `meeting` in `slot` adds to its parties' days (or saves)."""
        day = self.instance.day[slot]
        change = 0
        for p in meeting.parties:
            same_day = [s for s in self.busy[p] if self.instance.day[s] == day]
            if not same_day:
                continue
            before = max(same_day) - min(same_day) + 1 - len(same_day)
            after = max(*same_day, slot) - min(*same_day, slot) + 1 - len(same_day) - 1
            change += after - before
        return change


def first_come_first_served(instance: Instance) -> Schedule:
    """Each meeting, in the order it was accepted, takes the earliest slot still open to all
    its parties — how commercial matchmaking tools book."""
    started = time.perf_counter()
    board = _Board(instance)
    for meeting in instance.meetings:
        slot = next((s for s in instance.free_slots(meeting) if board.fits(meeting, s)), None)
        if slot is not None:
            board.place(meeting, slot)
    return Schedule(dict(board.slot_of), method="first-come-first-served", seconds=_since(started))


def greedy(instance: Instance) -> Schedule:
    """Meetings already published stay where they were if they still can; then the rest, the
    most valuable and most constrained first, each in the slot that adds least waiting; then
    gaps closed. (`local_search.improve` then moves meetings aside to let unplaced ones in.)"""
    started = time.perf_counter()
    board = _Board(instance)
    free = {m.id: instance.free_slots(m) for m in instance.meetings}
    load = party_load(instance.meetings)
    for m in instance.meetings:
        if m.previous_slot is not None and m.previous_slot in free[m.id] and board.fits(m, m.previous_slot):
            board.place(m, m.previous_slot)
    order = sorted(
        (m for m in instance.meetings if m.id not in board.slot_of),
        key=lambda m: (-m.weight, len(free[m.id]), -sum(load[p] for p in m.parties), m.id),
    )
    for m in order:
        options = [s for s in free[m.id] if board.fits(m, s)]
        if options:
            board.place(m, min(options, key=lambda s: (board.added_idle(m, s), s)))
    return Schedule(compact(instance, dict(board.slot_of)), method="greedy", seconds=_since(started))


def _since(started: float) -> float:
    return time.perf_counter() - started


def compact(instance: Instance, slot_of: dict[str, int], rounds: int = 4) -> dict[str, int]:
    """Close gaps in participants' days: move single meetings (never published ones) to free
    slots where their parties wait less, until no move helps. Keeps every meeting placed."""
    board = _Board(instance)
    meetings = {m.id: m for m in instance.meetings}
    for mid, slot in slot_of.items():
        board.place(meetings[mid], slot)
    free = {m.id: instance.free_slots(m) for m in instance.meetings}
    for _ in range(rounds):
        improved = False
        for mid in sorted(board.slot_of):
            m = meetings[mid]
            if m.previous_slot is not None:
                continue  # a published meeting stays where people expect it
            here = board.slot_of[mid]
            board.lift(m)
            stay = board.added_idle(m, here)
            options = [s for s in free[mid] if board.fits(m, s)]
            best = min(options, key=lambda s: (board.added_idle(m, s), s != here, s))
            if board.added_idle(m, best) < stay:
                improved = True
            else:
                best = here
            board.place(m, best)
        if not improved:
            break
    return dict(board.slot_of)
