"""Who should meet whom, and why: scores and readable reasons for pairs of participants.

Pure: profiles with their text vectors in, scores and reasons out; no I/O.

- **Offer ↔ need.** Each need is compared with every offer of the other side:
  the cosine of language-neutral multilingual embeddings (each language's mean
  vector removed, see `language.py`). E5 similarities sit in a narrow band, so a
  need's similarity is turned into a z-score against that same need's
  similarities to a fixed set of generic offers (the *background*), then
  squashed to 0..1. That makes scores comparable across needs and pools,
  without a fixed cut-off on raw cosines. When the member gave its need a
  category from the controlled vocabulary, an offer of that category gains a
  little (it is one signal among others, not a verdict: look-alike offers
  often share a category).
- **What each side gains.** A's gain from B is its best need↔offer fit, plus a
  little when B already works in a market A targets.
- **Need first.** For a reader with needs, the partners who meet them come
  first; what the other side gains is a bonus (`OTHER_SIDE`), never a reason to
  bury the answer. A reader with no needs sees first who needs what it offers.
  An organiser's view of a pair (`PairScore.mutual`) ranks by the larger gain
  with the same bonus for the smaller one.
- Small bonuses break ties: shared target markets, crossing a border,
  crossing clusters, complementary sectors.
- A pair is worth suggesting when one side gains at least `MIN_GAIN`.
- The same company never meets itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from c2f_shared.events import MatchReason

Vectors = NDArray[np.float32]

CATEGORY_Z = 1.0  # what an offer of the need's own category adds to its z-score
Z_MIDPOINT = 1.0  # z at which a fit counts one half
FIT_FOR_REASON = 0.5  # fits below this are not named as reasons
MIN_GAIN = 0.35  # pairs where neither side gains this much are not suggested
MIN_PAIR_SCORE = MIN_GAIN  # the organisers' default cut-off on the mutual score

OTHER_SIDE = 0.02  # what the other side gains only breaks ties (0.1 and more buried true partners)
MARKET_ACCESS = 0.10
OBSTACLE_HELP = 0.05
# Obstacles a partner already working in the market can help with.
HELPABLE = frozenset(
    {
        "certification",
        "regulation",
        "language",
        "market_knowledge",
        "partners",
        "public_procurement",
        "culture",
        "logistics",
    }
)
SHARED_MARKET, SHARED_MARKET_MAX = 0.03, 0.09
CROSS_BORDER, CROSS_CLUSTER, COMPLEMENTARY = 0.05, 0.03, 0.05

# Sectors whose firms typically build something together.
COMPLEMENTS = {
    frozenset({"ict", "mobility"}),
    frozenset({"ict", "construction"}),
    frozenset({"ict", "environmental_technologies"}),
    frozenset({"ict", "energy"}),
    frozenset({"construction", "energy"}),
    frozenset({"construction", "environmental_technologies"}),
    frozenset({"mobility", "energy"}),
}


@dataclass(frozen=True)
class Item:
    """An offer or a need: its text and what the vocabulary says it is about."""

    title: str
    description: str
    category: str | None

    @property
    def text(self) -> str:
        return f"{self.title}. {self.description}"


@dataclass(frozen=True)
class Profile:
    """What matching knows of one participant: its company's profile and text vectors."""

    participant_id: str
    company_id: str
    company_name: str
    cluster_id: str
    country: str
    sectors: frozenset[str] = frozenset()
    target_markets: frozenset[str] = frozenset()
    connection_markets: frozenset[str] = frozenset()
    partner_names: frozenset[str] = frozenset()  # organisations it works with, casefolded
    obstacles: frozenset[str] = frozenset()
    offers: tuple[Item, ...] = ()
    needs: tuple[Item, ...] = ()
    offer_vectors: Vectors = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    need_vectors: Vectors = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    # per need: mean and spread of its similarity to the background offers
    need_calibration: Vectors = field(default_factory=lambda: np.zeros((0, 2), np.float32))


def calibrate(need_vectors: Vectors, background: Vectors) -> Vectors:
    """Centre and spread of each need's similarity to the background offers (median and
    scaled MAD: robust to the few background offers that do fit the need)."""
    if len(need_vectors) == 0:
        return np.zeros((0, 2), np.float32)
    sims = need_vectors @ background.T
    centre = np.median(sims, axis=1)
    spread = 1.4826 * np.median(np.abs(sims - centre[:, None]), axis=1)
    return np.stack([centre, np.maximum(spread, 0.005)], axis=1).astype(np.float32)


def squash(z: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    squashed: NDArray[np.floating[Any]] = 1.0 / (1.0 + np.exp(-(z - Z_MIDPOINT)))
    return squashed


@dataclass(frozen=True)
class Fit:
    """How well `provider`'s best offer meets `seeker`'s best-served need."""

    value: float
    need: Item | None = None
    offer: Item | None = None


def fit(seeker: Profile, provider: Profile) -> Fit:
    """The best need↔offer fit of `provider`'s offers for `seeker`'s needs, in 0..1."""
    if not seeker.needs or not provider.offers or seeker.company_id == provider.company_id:
        return Fit(0.0)
    sims = seeker.need_vectors @ provider.offer_vectors.T
    mean, spread = seeker.need_calibration[:, :1], seeker.need_calibration[:, 1:]
    z = (sims - mean) / spread
    for i, need in enumerate(seeker.needs):
        for j, offer in enumerate(provider.offers):
            if need.category is not None and need.category == offer.category:
                z[i, j] += CATEGORY_Z
    scores = squash(z)
    best_need, best_offer = (int(x) for x in np.unravel_index(int(np.argmax(scores)), scores.shape))
    return Fit(float(scores[best_need, best_offer]), seeker.needs[best_need], provider.offers[best_offer])


def gain(seeker: Profile, provider: Profile) -> tuple[float, Fit, frozenset[str]]:
    """What `seeker` gains from meeting `provider`: the fit, and the markets it opens (where
    `provider` already works and `seeker` wants to go, more so if `seeker` names obstacles there
    that a partner on the ground helps with)."""
    best = fit(seeker, provider)
    opens = seeker.target_markets & provider.connection_markets
    bonus = (MARKET_ACCESS + (OBSTACLE_HELP if seeker.obstacles & HELPABLE else 0.0)) if opens else 0.0
    return min(1.0, best.value + bonus), best, opens


@dataclass
class PairScore:
    """A pair seen by its first party (the reader): `score` ranks partners for the reader,
    `mutual` ranks pairs for organisers."""

    score: float
    mutual: float
    parts: dict[str, float]
    reasons: list[MatchReason]
    signals: list[dict[str, Any]]


def pair(a: Profile, b: Profile) -> PairScore | None:
    """Score and reasons for a meeting of `a` (the reader) and `b`; None when they should not
    meet."""
    if a.company_id == b.company_id:
        return None
    gain_a, fit_a, opens_a = gain(a, b)
    gain_b, fit_b, opens_b = gain(b, a)
    if max(gain_a, gain_b) == 0.0:
        return None
    first, second = (gain_a, gain_b) if a.needs else (gain_b, gain_a)
    shared = sorted(a.target_markets & b.target_markets)
    bonuses = {
        "shared_markets": min(SHARED_MARKET_MAX, SHARED_MARKET * len(shared)),
        "cross_border": CROSS_BORDER if a.country != b.country else 0.0,
        "cross_cluster": CROSS_CLUSTER if a.cluster_id != b.cluster_id else 0.0,
        "complementary_sectors": COMPLEMENTARY if _complementary(a.sectors, b.sectors) else 0.0,
    }
    parts = {
        "gain_a": round(gain_a, 4),
        "gain_b": round(gain_b, 4),
        "first": round(first, 4),
        "other_side": round(OTHER_SIDE * second, 4),
        **bonuses,
    }
    extra = sum(bonuses.values())
    mutual = max(gain_a, gain_b) + OTHER_SIDE * min(gain_a, gain_b) + extra
    reasons = [
        MatchReason(
            offered_by=provider.participant_id,
            offer_title=best.offer.title,
            needed_by=seeker.participant_id,
            need_title=best.need.title,
            basis=f"meaning {best.value:.2f}",
        )
        for seeker, provider, best in ((a, b, fit_a), (b, a, fit_b))
        if best.value >= FIT_FOR_REASON and best.offer is not None and best.need is not None
    ]
    signals: list[dict[str, Any]] = []
    if shared:
        signals.append({"kind": "shared_markets", "markets": shared})
    for seeker, provider, opens in ((a, b, opens_a), (b, a, opens_b)):
        if opens:
            access: dict[str, Any] = {
                "kind": "market_access",
                "for": seeker.participant_id,
                "from": provider.participant_id,
                "markets": sorted(opens),
            }
            if seeker.obstacles & HELPABLE:
                access["obstacles"] = sorted(seeker.obstacles & HELPABLE)
            signals.append(access)
    if a.country != b.country:
        signals.append({"kind": "connects_countries", "countries": sorted({a.country, b.country})})
    if bonuses["complementary_sectors"]:
        signals.append({"kind": "complementary_sectors", "sectors": sorted(a.sectors | b.sectors)})
    score = first + OTHER_SIDE * second + extra
    return PairScore(round(score, 4), round(mutual, 4), parts, reasons, signals)


def worth_meeting(scored: PairScore) -> bool:
    return max(scored.parts["gain_a"], scored.parts["gain_b"]) >= MIN_GAIN


def _complementary(mine: frozenset[str], theirs: frozenset[str]) -> bool:
    return any(frozenset({x, y}) in COMPLEMENTS for x in mine for y in theirs if x != y)


def top_pairs(me: Profile, others: Sequence[Profile], k: int) -> list[tuple[Profile, PairScore]]:
    """`me`'s best `k` partners among `others`, best first for `me`, those worth meeting.

    Among many, every score is first computed at once with matrix products (`scores`, the same
    formula as `pair` without the reasons), and only a shortlist of the best is scored by `pair`:
    at an event of 500 this is what lets a sign-up be ranked in milliseconds."""
    if len(others) > SHORTLIST_FROM * max(k, 1):
        score, worth = scores(me, others)
        ranked = [int(i) for i in np.argsort(-score, kind="stable") if worth[i]]
        # The shortlist keeps a margin, so that float rounding between a batched and a
        # one-by-one product cannot push a true top-k partner out; `others`' order breaks ties.
        others = [others[i] for i in sorted(ranked[: SHORTLIST_FROM * max(k, 1)])]
    scored = [(other, s) for other in others if (s := pair(me, other)) is not None and worth_meeting(s)]
    scored.sort(key=lambda item: item[1].score, reverse=True)
    return scored[:k]


SHORTLIST_FROM = 4  # above this many times k candidates, `top_pairs` shortlists with `scores`


def scores(me: Profile, others: Sequence[Profile]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """`pair(me, other).score` for every other at once (-inf where `pair` gives None), and
    whether each pair is worth meeting; without reasons or signals."""
    n = len(others)
    fit_me = _fits(me, others, reader_seeks=True)
    fit_them = _fits(me, others, reader_seeks=False)
    gain_me, gain_them = np.empty(n), np.empty(n)
    extra = np.empty(n)
    me_helped = MARKET_ACCESS + (OBSTACLE_HELP if me.obstacles & HELPABLE else 0.0)
    for i, other in enumerate(others):
        gain_me[i] = min(
            1.0, fit_me[i] + (me_helped if me.target_markets & other.connection_markets else 0.0)
        )
        them_helped = MARKET_ACCESS + (OBSTACLE_HELP if other.obstacles & HELPABLE else 0.0)
        gain_them[i] = min(
            1.0, fit_them[i] + (them_helped if other.target_markets & me.connection_markets else 0.0)
        )
        extra[i] = (
            min(SHARED_MARKET_MAX, SHARED_MARKET * len(me.target_markets & other.target_markets))
            + (CROSS_BORDER if me.country != other.country else 0.0)
            + (CROSS_CLUSTER if me.cluster_id != other.cluster_id else 0.0)
            + (COMPLEMENTARY if _complementary(me.sectors, other.sectors) else 0.0)
        )
    first, second = (gain_me, gain_them) if me.needs else (gain_them, gain_me)
    score = first + OTHER_SIDE * second + extra
    none = (np.maximum(gain_me, gain_them) == 0.0) | np.array([o.company_id == me.company_id for o in others])
    score[none] = -np.inf
    worth = ~none & (np.maximum(gain_me, gain_them) >= MIN_GAIN - 1e-4)  # `pair` decides at the edge
    return score, worth


def _fits(me: Profile, others: Sequence[Profile], *, reader_seeks: bool) -> NDArray[np.float64]:
    """`fit(me, other).value` (reader_seeks) or `fit(other, me).value` for every other."""
    n = len(others)
    best = np.zeros(n)
    if reader_seeks:
        rows = [o.offer_vectors for o in others]
        if not me.needs or not sum(len(r) for r in rows):
            return best
        owner = np.repeat(np.arange(n), [len(o.offers) for o in others])
        categories = np.array([item.category for o in others for item in o.offers], dtype=object)
        z = (me.need_vectors @ np.vstack([r for r in rows if len(r)]).T - me.need_calibration[:, :1]) / (
            me.need_calibration[:, 1:]
        )
        for i, need in enumerate(me.needs):
            if need.category is not None:
                z[i, categories == need.category] += CATEGORY_Z
        values = squash(z).max(axis=0)
    else:
        if not me.offers:
            return best
        counts = [len(o.needs) for o in others]
        if not sum(counts):
            return best
        owner = np.repeat(np.arange(n), counts)
        calibration = np.vstack([o.need_calibration for o in others if len(o.needs)])
        need_vectors = np.vstack([o.need_vectors for o in others if len(o.needs)])
        z = (need_vectors @ me.offer_vectors.T - calibration[:, :1]) / calibration[:, 1:]
        need_categories = [item.category for o in others for item in o.needs]
        for j, offer in enumerate(me.offers):
            if offer.category is not None:
                z[[c == offer.category for c in need_categories], j] += CATEGORY_Z
        values = squash(z).max(axis=1)
    np.maximum.at(best, owner, values)
    mine = np.array([o.company_id == me.company_id for o in others])
    best[mine] = 0.0
    return best
