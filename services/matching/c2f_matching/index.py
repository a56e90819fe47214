"""Top-k partners among many profiles, fast: a matrix shortlist, then exact scoring.

All offers (and all needs) of the indexed profiles sit in one matrix each,
grouped by profile. For one participant, two matrix products give, for every
profile at once, the best fit in each direction (what I gain, what they gain);
a cheap estimate of the pair score then shortlists a few times k profiles, and
only those are scored exactly with `scoring.pair` (reasons and all).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from c2f_matching import scoring
from c2f_matching.scoring import PairScore, Profile

SHORTLIST_FACTOR = 4


def _grouped(rows: Sequence[NDArray[np.float32]], dim: int) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """Stack per-profile matrices; return the stack and, per profile, the index of its first row."""
    counts = np.array([len(r) for r in rows], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    stacked = np.vstack([r for r in rows if len(r)]) if counts.sum() else np.zeros((0, dim), np.float32)
    return stacked.astype(np.float32), starts


def _best_per_profile(
    values: NDArray[np.float32], starts: NDArray[np.intp], counts: NDArray[np.intp]
) -> NDArray[np.float32]:
    """Per profile, the maximum of its rows' values (0 for a profile with no rows)."""
    best = np.zeros(len(starts), dtype=np.float32)
    has = counts > 0
    if values.size:
        best[has] = np.maximum.reduceat(values, starts[has])
    return best


class ProfileIndex:
    def __init__(self, profiles: Sequence[Profile], dim: int) -> None:
        self.profiles = list(profiles)
        self.dim = dim
        # Stored transposed (one row per dimension): a few vectors times the whole matrix then
        # reads memory in order, which is what bounds the time at this size.
        offers, self.offer_starts = _grouped([p.offer_vectors for p in self.profiles], dim)
        self.offers_t = np.ascontiguousarray(offers.T)
        self.offer_counts = np.array([len(p.offers) for p in self.profiles], dtype=np.intp)
        needs, self.need_starts = _grouped([p.need_vectors for p in self.profiles], dim)
        self.needs_t = np.ascontiguousarray(needs.T)
        self.need_counts = np.array([len(p.needs) for p in self.profiles], dtype=np.intp)
        calibrations = [p.need_calibration for p in self.profiles if len(p.need_calibration)]
        calibration = np.vstack(calibrations) if calibrations else np.zeros((0, 2), np.float32)
        self.need_centre, self.need_spread = calibration[:, 0], calibration[:, 1]
        self.companies = np.array([p.company_id for p in self.profiles])

    def nbytes(self) -> int:
        return int(self.offers_t.nbytes + self.needs_t.nbytes + self.need_centre.nbytes * 2)

    def estimate(self, me: Profile) -> NDArray[np.float32]:
        """A cheap score for `me` with every indexed profile, need first (no bonuses, no category)."""
        gain_me = np.zeros(len(self.profiles), np.float32)
        if len(me.needs) and self.offers_t.shape[1]:
            z = (me.need_vectors @ self.offers_t - me.need_calibration[:, :1]) / me.need_calibration[:, 1:]
            gain_me = _best_per_profile(scoring.squash(z.max(axis=0)), self.offer_starts, self.offer_counts)
        gain_them = np.zeros(len(self.profiles), np.float32)
        if len(me.offers) and self.needs_t.shape[1]:
            z = ((me.offer_vectors @ self.needs_t).max(axis=0) - self.need_centre) / self.need_spread
            gain_them = _best_per_profile(scoring.squash(z), self.need_starts, self.need_counts)
        first, second = (gain_me, gain_them) if len(me.needs) else (gain_them, gain_me)
        estimate: NDArray[np.float32] = first + scoring.OTHER_SIDE * second
        estimate[self.companies == me.company_id] = -1.0
        return estimate

    def top(self, me: Profile, k: int) -> list[tuple[Profile, PairScore]]:
        """`me`'s best `k` partners among the indexed profiles, scored exactly."""
        estimate = self.estimate(me)
        shortlist_size = min(len(estimate), k * SHORTLIST_FACTOR)
        if shortlist_size == 0:
            return []
        shortlist = np.argpartition(-estimate, shortlist_size - 1)[:shortlist_size]
        return scoring.top_pairs(me, [self.profiles[i] for i in shortlist], k)
