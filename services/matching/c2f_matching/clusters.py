"""Cluster-to-cluster matching: which clusters complement each other, and why.

Pure: member profiles in, scores and reasons out; no I/O.

A cluster is seen through its members: what they offer, what they need, where
they want to go and where they already work. Cluster B complements cluster A when

- B's members meet A's members' needs (`served`: the mean, over A's members with
  needs, of the best fit any member of B offers, on the same language-neutral,
  calibrated fits as company matching),
- A's members meet B's members' needs (`serves`: the same the other way round),
- B opens markets A's members target (`access`: the share of A's members with
  target markets of which one is B's country or a market where a member of B
  already works), and
- A's members already work with B's members (`ties`: named in their connections).

The score weighs the two directions alike, as a delegation meeting goes both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from c2f_matching.scoring import FIT_FOR_REASON, Profile, squash

W_SERVED, W_SERVES, W_ACCESS, W_TIES = 0.4, 0.4, 0.15, 0.05
EXAMPLES = 2  # need ↔ offer examples named per direction


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    name: str
    country: str
    members: tuple[Profile, ...]


@dataclass(frozen=True)
class Example:
    need: str
    needed_by: str
    offer: str
    offered_by: str
    fit: float


@dataclass(frozen=True)
class Direction:
    """How well the members of one cluster meet the needs of the other's."""

    served: float  # mean best fit over the seeking members with needs
    seekers: int  # members whose needs are met (fit ≥ FIT_FOR_REASON)
    providers: int  # members who meet them
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class Complementarity:
    score: float
    parts: dict[str, float]
    served: Direction  # the reader's members' needs, met by the other's
    serves: Direction  # the other's needs, met by the reader's members
    markets: tuple[str, ...]  # markets the other opens that the reader's members target
    members_to_markets: int  # the reader's members who target those markets
    ties: tuple[str, ...] = field(default=())  # the other's members the reader's already work with


def _fits(seekers: Sequence[Profile], providers: Sequence[Profile]) -> Direction:
    """For each seeking member, the best offer of any provider for its needs."""
    asking = [m for m in seekers if len(m.needs)]
    offering = [m for m in providers if len(m.offers)]
    if not asking or not offering:
        return Direction(0.0, 0, 0, ())
    needs = np.vstack([m.need_vectors for m in asking])
    calibration = np.vstack([m.need_calibration for m in asking])
    need_owner = np.repeat(np.arange(len(asking)), [len(m.needs) for m in asking])
    offers = np.vstack([m.offer_vectors for m in offering])
    offer_owner = np.repeat(np.arange(len(offering)), [len(m.offers) for m in offering])
    same_company = np.array([[a.company_id == o.company_id for o in offering] for a in asking])
    fits: NDArray[np.floating] = squash((needs @ offers.T - calibration[:, :1]) / calibration[:, 1:])
    fits[same_company[need_owner][:, offer_owner]] = 0.0
    best_offer = fits.argmax(axis=1)
    best_fit = fits[np.arange(len(fits)), best_offer]
    per_member = np.zeros(len(asking))
    np.maximum.at(per_member, need_owner, best_fit)
    met = [i for i in range(len(fits)) if best_fit[i] >= FIT_FOR_REASON]
    examples: list[Example] = []
    named: set[str] = set()
    for i in sorted(met, key=lambda i: -best_fit[i]):
        seeker, provider = asking[need_owner[i]], offering[offer_owner[best_offer[i]]]
        if seeker.company_id in named or len(examples) == EXAMPLES:
            continue
        named.add(seeker.company_id)
        need_index = i - int(np.flatnonzero(need_owner == need_owner[i])[0])
        offer_index = int(best_offer[i]) - int(np.flatnonzero(offer_owner == offer_owner[best_offer[i]])[0])
        examples.append(
            Example(
                need=seeker.needs[need_index].title,
                needed_by=seeker.company_name,
                offer=provider.offers[offer_index].title,
                offered_by=provider.company_name,
                fit=round(float(best_fit[i]), 2),
            )
        )
    return Direction(
        served=float(per_member.mean()),
        seekers=len({int(need_owner[i]) for i in met}),
        providers=len({int(offer_owner[best_offer[i]]) for i in met}),
        examples=tuple(examples),
    )


def complementarity(mine: Cluster, theirs: Cluster) -> Complementarity:
    """How much `theirs` complements `mine`, from `mine`'s side."""
    served, serves = _fits(mine.members, theirs.members), _fits(theirs.members, mine.members)
    opened = {theirs.country}.union(*(m.connection_markets for m in theirs.members))
    targeting = [m for m in mine.members if m.target_markets]
    reached = [m for m in targeting if m.target_markets & opened]
    markets = tuple(sorted(set().union(*(m.target_markets & opened for m in reached))))
    access = len(reached) / len(targeting) if targeting else 0.0
    their_names = {m.company_name.casefold(): m.company_name for m in theirs.members}
    ties = tuple(sorted({their_names[o] for m in mine.members for o in m.partner_names if o in their_names}))
    parts = {
        "served": round(served.served, 4),
        "serves": round(serves.served, 4),
        "access": round(access, 4),
        "ties": 1.0 if ties else 0.0,
    }
    score = W_SERVED * served.served + W_SERVES * serves.served + W_ACCESS * access
    score += W_TIES * parts["ties"]
    return Complementarity(round(score, 4), parts, served, serves, markets, len(reached), ties)


def _examples(direction: Direction) -> str:
    return "; ".join(
        f"“{e.offer}” ({e.offered_by}) for “{e.need}” ({e.needed_by})" for e in direction.examples
    )


def explain(found: Complementarity, names: dict[str, str] | None = None) -> list[str]:
    """The reasons, said to the reader's cluster (`names`: country codes → names)."""
    names = names or {}
    lines = []
    if found.served.seekers:
        lines.append(
            f"{found.served.seekers} of your members need what {found.served.providers} of theirs offer: "
            + _examples(found.served)
        )
    if found.serves.seekers:
        lines.append(
            f"{found.serves.seekers} of their members need what {found.serves.providers} of yours offer: "
            + _examples(found.serves)
        )
    if found.markets:
        lines.append(
            f"they work in {', '.join(names.get(m, m) for m in found.markets)}, which "
            f"{found.members_to_markets} of your members target"
        )
    if found.ties:
        lines.append(f"your members already work with theirs: {', '.join(found.ties)}")
    return lines


def rank(mine: Cluster, others: Sequence[Cluster], k: int) -> list[tuple[Cluster, Complementarity]]:
    """`mine`'s `k` most complementary clusters among `others`, best first."""
    scored = [
        (other, complementarity(mine, other)) for other in others if other.cluster_id != mine.cluster_id
    ]
    scored = [(other, found) for other, found in scored if found.score > 0]
    scored.sort(key=lambda item: item[1].score, reverse=True)
    return scored[:k]
