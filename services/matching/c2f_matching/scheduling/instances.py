"""Synthetic brokerage days for benchmarks and tests: participants with realistic gaps in
their availability, requests with skewed popularity (a few companies everyone wants to
meet), slots over one or more days, and a limited number of tables."""

import random

from c2f_matching.scheduling.model import Instance, Meeting


def generate(
    participants: int,
    requests: int,
    slots: int,
    *,
    days: int = 1,
    tables: int | None = None,
    seed: int = 0,
    skew: float = 0.8,
    weighted: bool = True,
) -> Instance:
    """An instance where every request was accepted. `skew` shapes popularity: the i-th most
    popular participant is chosen as a partner with odds ∝ 1/i^skew. `weighted`: meetings
    have priorities 1–6 (mutual interest counts extra); else every meeting weighs 1."""
    rng = random.Random(seed)
    people = [f"p{i:04d}" for i in range(participants)]
    per_day = -(-slots // days)
    day = tuple(min(s // per_day, days - 1) for s in range(slots))
    popularity = [1 / (rank + 1) ** skew for rank in range(participants)]
    ranked = people[:]
    rng.shuffle(ranked)
    pairs: set[tuple[str, str]] = set()
    meetings: list[Meeting] = []
    attempts = 0
    while len(meetings) < requests and attempts < requests * 50:
        attempts += 1
        requester = rng.choice(people)
        invitee = rng.choices(ranked, weights=popularity)[0]
        key = (min(requester, invitee), max(requester, invitee))
        if requester == invitee or key in pairs:
            continue
        pairs.add(key)
        mutual = rng.random() < 0.1
        weight = rng.choice((1, 1, 2, 3)) + (3 if mutual else 0) if weighted else 1
        meetings.append(Meeting(f"m{len(meetings):05d}", (requester, invitee), weight))
    return Instance(
        day=day,
        tables=tables if tables is not None else max(1, participants // 3),
        meetings=tuple(meetings),
        available={p: _availability(rng, slots) for p in people if rng.random() < 0.3},
    )


def _availability(rng: random.Random, slots: int) -> frozenset[int]:
    """Arrives late or leaves early (a window), or has a few other appointments (holes)."""
    all_slots = set(range(slots))
    if rng.random() < 0.6:
        length = rng.randint(max(1, slots // 2), max(1, slots - 1))
        start = rng.randint(0, slots - length)
        return frozenset(range(start, start + length))
    holes = rng.sample(range(slots), k=min(slots - 1, rng.randint(1, 3)))
    return frozenset(all_slots - set(holes))
