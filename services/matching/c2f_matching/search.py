"""Partner search from memory: every company's offers in one matrix, kept in step with
matching's database.

`OfferIndex` holds one row per offer (its language-neutral vector) and, per company,
what a hit shows and what the filters look at. A search is one matrix-vector
product over the live rows, then the best offer per company. `sync` brings the
index up to date before a search: the companies written since the last look (by
`updated_at`, indexed), and the companies erased since (`erasures`, which erasure
writes in the same transaction). Rows of a changed company are marked dead and its
new rows appended; the matrix is compacted when a quarter of it is dead.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from c2f_matching.scoring import squash
from c2f_matching.store import COMPANIES, ERASED

Vectors = NDArray[np.float32]


LOOK_BACK = timedelta(seconds=90)  # a transaction's longest life (60 s) and clock skew
VERSION = {"revision": 1, "updated_at": 1}


def _after(field: str, since: datetime | None) -> dict[str, Any]:
    return {} if since is None else {field: {"$gte": since - LOOK_BACK}}


@dataclass(frozen=True)
class Entry:
    company_id: str
    company_name: str
    country: str
    sectors: tuple[str, ...]
    target_markets: tuple[str, ...]
    offers: tuple[tuple[str, str], ...]  # (title, description)
    first_row: int

    def filtered_by(self) -> list[tuple[str, str]]:
        """The (filter, value) pairs a search can find it by."""
        return [
            *(("sector", s) for s in self.sectors),
            ("country", self.country),
            *(("target_market", m) for m in self.target_markets),
        ]


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float
    offer: int  # which of its offers fits best


class OfferIndex:
    def __init__(self, dim: int, vectors_id: str | None = None) -> None:
        """`vectors_id`: the vectors the index takes (a company stored with others is left out
        until it is encoded again)."""
        self.dim = dim
        self.vectors_id = vectors_id
        self._lock = asyncio.Lock()
        self._clear()

    def _clear(self) -> None:
        self._vectors = np.zeros((1024, self.dim), np.float32)
        self._owner = np.zeros(1024, np.int64)  # row → slot of its company
        self._alive = np.zeros(1024, bool)
        self._rows = 0
        self._entries: list[Entry | None] = []
        self._slot: dict[str, int] = {}
        self._by: dict[str, defaultdict[str, set[int]]] = {
            "sector": defaultdict(set),
            "country": defaultdict(set),
            "target_market": defaultdict(set),
        }
        self._versions: dict[str, tuple[Any, Any]] = {}  # company id → (revision, updated_at)
        self._since: datetime | None = None
        self._erased_since: datetime | None = None

    def __len__(self) -> int:
        return len(self._slot)

    def nbytes(self) -> int:
        return int(self._vectors.nbytes + self._owner.nbytes + self._alive.nbytes)

    # --- keeping it in step -------------------------------------------------------------

    def put(self, company: dict[str, Any]) -> None:
        """Index (or re-index) one company document of matching's read model."""
        self.remove(company["_id"])
        offers = company.get("offers") or []
        vectors = company.get("vectors") or {}
        if not offers or (self.vectors_id and vectors.get("model") != self.vectors_id):
            return
        rows = np.frombuffer(vectors["offers"], dtype=np.float32).reshape(-1, self.dim)
        self._grow(len(rows))
        slot = len(self._entries)
        entry = Entry(
            company_id=company["_id"],
            company_name=company["legal_name"],
            country=company["country"],
            sectors=tuple(company.get("sectors", [])),
            target_markets=tuple(company.get("target_markets", [])),
            offers=tuple((o["title"], o["description"]) for o in offers),
            first_row=self._rows,
        )
        self._entries.append(entry)
        self._slot[entry.company_id] = slot
        start, end = self._rows, self._rows + len(rows)
        self._vectors[start:end] = rows
        self._owner[start:end] = slot
        self._alive[start:end] = True
        self._rows = end
        for field, value in entry.filtered_by():
            self._by[field][value].add(slot)

    def remove(self, company_id: str) -> None:
        slot = self._slot.pop(company_id, None)
        if slot is None:
            return
        entry = self._entries[slot]
        self._entries[slot] = None
        if entry is not None:
            self._alive[entry.first_row : entry.first_row + len(entry.offers)] = False
            for field, value in entry.filtered_by():
                self._by[field][value].discard(slot)
        if self._rows > 4096 and self._alive[: self._rows].sum() < 0.75 * self._rows:
            self._compact()

    def _grow(self, more: int) -> None:
        if self._rows + more <= len(self._vectors):
            return
        size = max(2 * len(self._vectors), self._rows + more)
        for name in ("_vectors", "_owner", "_alive"):
            old = getattr(self, name)
            new = np.zeros((size, *old.shape[1:]), old.dtype)
            new[: self._rows] = old[: self._rows]
            setattr(self, name, new)

    def _compact(self) -> None:
        keep = np.flatnonzero(self._alive[: self._rows])
        entries = [e for e in self._entries if e is not None]
        remap = {self._slot[e.company_id]: i for i, e in enumerate(entries)}
        self._vectors[: len(keep)] = self._vectors[keep]
        self._owner[: len(keep)] = [remap[int(s)] for s in self._owner[keep]]
        self._alive[: len(keep)] = True
        self._alive[len(keep) : self._rows] = False
        self._rows = len(keep)
        rows = np.flatnonzero(np.r_[True, np.diff(self._owner[: self._rows]) != 0])
        compacted = [
            Entry(**{**e.__dict__, "first_row": int(row)}) for e, row in zip(entries, rows, strict=True)
        ]
        self._entries = list(compacted)
        self._slot = {e.company_id: i for i, e in enumerate(compacted)}
        for index in self._by.values():
            for value, slots in index.items():
                index[value] = {remap[s] for s in slots}

    async def reload(self, db: Any) -> None:
        """Forget everything and read matching's database again (its read model was rebuilt:
        companies gone from it leave search too)."""
        async with self._lock:
            self._clear()
            await self._sync(db)

    async def sync(self, db: Any) -> None:
        """Take in what matching's database changed since the last call.

        A write is stamped before its transaction commits, and a transaction lives at most a
        minute, so each look goes back `LOOK_BACK` before the newest stamp it saw: a write
        that became visible late is still found. Of what it finds, only companies whose
        version the index does not hold are read in full."""
        async with self._lock:
            await self._sync(db)

    async def _sync(self, db: Any) -> None:
        changed: list[str] = []
        async for company in db[COMPANIES].find(_after("updated_at", self._since), VERSION):
            stamp = company.get("updated_at")
            if self._versions.get(company["_id"]) != (company.get("revision"), stamp):
                changed.append(company["_id"])
            if stamp and (self._since is None or stamp > self._since):
                self._since = stamp
        for start in range(0, len(changed), 1000):
            async for company in db[COMPANIES].find({"_id": {"$in": changed[start : start + 1000]}}):
                self.put(company)
                self._versions[company["_id"]] = (company.get("revision"), company.get("updated_at"))
        async for erased in db[ERASED].find(_after("erased_at", self._erased_since)):
            self.remove(erased["_id"])
            self._versions.pop(erased["_id"], None)
            if self._erased_since is None or erased["erased_at"] > self._erased_since:
                self._erased_since = erased["erased_at"]

    # --- searching -----------------------------------------------------------------------

    def _allowed(self, filters: dict[str, str | None]) -> NDArray[np.bool_] | None:
        chosen: set[int] | None = None
        for field, value in filters.items():
            if value is None:
                continue
            slots = self._by[field].get(value, set())
            chosen = set(slots) if chosen is None else chosen & slots
        if chosen is None:
            return None
        allowed = np.zeros(len(self._entries), bool)
        allowed[list(chosen)] = True
        return allowed

    def search(
        self,
        needle: Vectors,
        calibration: tuple[float, float],
        limit: int,
        *,
        exclude: Iterable[str] = (),
        sector: str | None = None,
        country: str | None = None,
        target_market: str | None = None,
    ) -> list[Hit]:
        """The `limit` companies whose best offer is closest to `needle`, best first; the score
        is that offer's calibrated fit (0..1)."""
        n = self._rows
        live = self._alive[:n].copy()
        for company_id in exclude:
            slot = self._slot.get(company_id)
            entry = self._entries[slot] if slot is not None else None
            if entry is not None:
                live[entry.first_row : entry.first_row + len(entry.offers)] = False
        allowed = self._allowed({"sector": sector, "country": country, "target_market": target_market})
        if allowed is not None:
            live &= allowed[self._owner[:n]]
        shown = int(live.sum())
        if shown == 0:
            return []
        sims = self._vectors[:n] @ needle
        sims[~live] = -np.inf
        centre, spread = calibration
        wanted = min(shown, 4 * limit)
        while True:  # the best rows, until they hold `limit` companies (or there are no more)
            best = np.argpartition(-sims, wanted - 1)[:wanted]
            best = best[np.argsort(-sims[best], kind="stable")]
            hits: list[Hit] = []
            seen: set[int] = set()
            for row in best:
                slot = int(self._owner[row])
                if slot in seen:
                    continue
                seen.add(slot)
                entry = self._entries[slot]
                assert entry is not None
                fit = float(squash(np.array((sims[row] - centre) / spread)))
                hits.append(Hit(entry, round(fit, 4), int(row) - entry.first_row))
                if len(hits) == limit:
                    return hits
            if wanted == shown:
                return hits
            wanted = min(shown, 4 * wanted)
