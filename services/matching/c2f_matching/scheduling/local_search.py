"""Local search for the most valuable set of meetings that fits: what carries busy events.

On events where a few firms are wanted by many (requests per participant near the
number of slots), the whole CP-SAT model does not improve its start in minutes. This
search does, in seconds:

1. start from a schedule (the greedy one);
2. take an unplaced meeting at random and try each of its slots: the meetings in its way
   (a party already meeting then, or no table left) are moved to another open slot if they
   fit there, or evicted;
3. make the best such move unless it loses value (a move that swaps a meeting for one of
   the same worth is taken: it lets the search cross plateaus); an evicted meeting may not
   return to that slot for a while (tabu), so the search does not undo itself;
4. stop at the time limit, as soon as the value reaches `target` (an upper bound: then
   it is optimal), or when a long while (`PATIENCE` iterations per meeting) brought
   nothing better: on small events the exact model then does the rest in no time.

Meetings of the published schedule are worth more (`solver.values`), so the search keeps
them unless it can place more value otherwise, exactly as the exact model would.
"""

import random
import time
from collections import Counter, defaultdict

from c2f_matching.scheduling.model import Instance, Meeting

TABU = 12  # iterations an evicted meeting stays out of the slot it left
PATIENCE = 50  # per meeting: iterations without a better schedule before the search gives up
TABLE_CANDIDATES = 8  # meetings of a full slot tried for a move, per try


class _State:
    def __init__(self, instance: Instance, value: dict[str, int], slot_of: dict[str, int]) -> None:
        self.instance = instance
        self.value = value
        self.meetings = {m.id: m for m in instance.meetings}
        self.free = {m.id: instance.free_slots(m) for m in instance.meetings}
        self.slot_of: dict[str, int] = {}
        self.at: dict[tuple[str, int], str] = {}  # (party, slot) → meeting
        self.in_slot: dict[int, set[str]] = defaultdict(set)
        self.worth = 0
        for mid, s in slot_of.items():
            self.place(self.meetings[mid], s)

    def place(self, m: Meeting, s: int) -> None:
        self.slot_of[m.id] = s
        self.in_slot[s].add(m.id)
        for p in m.parties:
            self.at[(p, s)] = m.id
        self.worth += self.value[m.id]

    def lift(self, m: Meeting) -> int:
        s = self.slot_of.pop(m.id)
        self.in_slot[s].discard(m.id)
        for p in m.parties:
            del self.at[(p, s)]
        self.worth -= self.value[m.id]
        return s

    def elsewhere(self, b: Meeting, away_from: int, taken: "Taken") -> int | None:
        """Another slot `b` fits in now (not `away_from`), besides what this move already
        `taken`."""
        for t in self.free[b.id]:
            if (
                t != away_from
                and len(self.in_slot[t]) + taken.tables[t] < self.instance.tables
                and all((p, t) not in self.at and (p, t) not in taken.parties for p in b.parties)
            ):
                return t
        return None


class Taken:
    """What the meetings moved aside by one move occupy."""

    def __init__(self) -> None:
        self.parties: set[tuple[str, int]] = set()
        self.tables: Counter[int] = Counter()

    def add(self, b: Meeting, t: int) -> None:
        self.parties.update((p, t) for p in b.parties)
        self.tables[t] += 1


def _move(state: _State, m: Meeting, s: int, rng: random.Random) -> tuple[int, list[tuple[str, int | None]]]:
    """Placing `m` in `s`: its gain, and what happens to each meeting in its way (moved to a
    slot, or None: evicted)."""
    blockers = {state.at[(p, s)] for p in m.parties if (p, s) in state.at}
    gone = frozenset(blockers)
    plan: list[tuple[str, int | None]] = []
    if len(state.in_slot[s] - gone) >= state.instance.tables:  # no table: one more must go
        others = sorted(state.in_slot[s] - gone)  # sorted: the same search whatever the hash seed
        rng.shuffle(others)
        candidates = others[:TABLE_CANDIDATES]
        # a meeting that can move costs nothing; else the least valuable
        movable = next(
            (c for c in candidates if state.elsewhere(state.meetings[c], s, Taken()) is not None), None
        )
        blockers.add(movable or min(candidates, key=lambda c: state.value[c]))
    taken = Taken()
    gain = state.value[m.id]
    for b_id in sorted(blockers):
        b = state.meetings[b_id]
        target = state.elsewhere(b, s, taken)
        if target is not None:
            taken.add(b, target)
        else:
            gain -= state.value[b_id]
        plan.append((b_id, target))
    return gain, plan


def improve(
    instance: Instance,
    value: dict[str, int],
    start: dict[str, int],
    seconds: float,
    target: int | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """A schedule worth at least as much as `start`, found within `seconds`."""
    deadline = time.perf_counter() + seconds
    rng = random.Random(seed)
    state = _State(instance, value, start)
    best, best_worth = dict(state.slot_of), state.worth
    unplaced = [m.id for m in instance.meetings if m.id not in state.slot_of]
    tabu: dict[tuple[str, int], int] = {}
    iteration = last_better = 0
    patience = max(2000, PATIENCE * len(instance.meetings))
    while unplaced and time.perf_counter() < deadline and (target is None or best_worth < target):
        iteration += 1
        if iteration - last_better > patience:
            break
        i = rng.randrange(len(unplaced))
        m = state.meetings[unplaced[i]]
        options = []
        for s in state.free[m.id]:
            if tabu.get((m.id, s), 0) > iteration:
                continue
            gain, plan = _move(state, m, s, rng)
            options.append((gain, rng.random(), s, plan))
        if not options:
            continue
        gain, _, s, plan = max(options)
        if gain < 0:
            continue
        unplaced[i] = unplaced[-1]
        unplaced.pop()
        for b_id, _ in plan:
            state.lift(state.meetings[b_id])
        for b_id, target_slot in plan:
            if target_slot is not None:
                state.place(state.meetings[b_id], target_slot)
            else:
                unplaced.append(b_id)
                tabu[(b_id, s)] = iteration + TABU
        state.place(m, s)
        if state.worth > best_worth:
            best, best_worth, last_better = dict(state.slot_of), state.worth, iteration
    return best
