"""Between the read model and the scoring: text vectors for a profile, and profiles to score.

Vectors are computed once per text (CachedEmbedder) and stored with the company
in matching's own database, so scoring an event needs no model calls.
"""

import json
from collections import OrderedDict
from importlib import resources
from typing import Any

import numpy as np

from c2f_matching.embedder import CachedEmbedder, Embedder, Vectors
from c2f_matching.scoring import Item, Profile, calibrate


def background_texts() -> list[str]:
    data = json.loads(
        resources.files("c2f_matching").joinpath("data/background_offers.json").read_text("utf-8")
    )
    offers: list[str] = data["offers"]
    return offers


def _items(raw: list[dict[str, Any]]) -> tuple[Item, ...]:
    return tuple(Item(r["title"], r["description"], r.get("category")) for r in raw)


PROFILES_KEPT = 20_000  # companies' profiles kept in memory, the least recently used dropped


class Matcher:
    def __init__(self, model: Embedder) -> None:
        self.model = model
        self._embedder: CachedEmbedder | None = None
        self._background: Vectors | None = None
        # company id → (its document's version, its profile): scoring an event reads each
        # company's document again only when it changed.
        self._profiles: OrderedDict[str, tuple[Any, Profile]] = OrderedDict()

    def bind(self, cache: Any) -> None:
        """Keep computed vectors in `cache` (a collection of matching's database)."""
        self._embedder = CachedEmbedder(self.model, cache)

    @property
    def embedder(self) -> CachedEmbedder:
        if self._embedder is None:
            raise RuntimeError("matcher not bound to its database")
        return self._embedder

    async def _embed(self, texts: list[str], role: Any) -> Vectors:
        return await self.embedder.embed(texts, role)

    async def background(self) -> Vectors:
        if self._background is None:
            self._background = await self._embed(background_texts(), "passage")
        return self._background

    async def encode(self, offers: list[dict[str, Any]], needs: list[dict[str, Any]]) -> dict[str, Any]:
        """What the company document keeps: offer and need vectors and the needs' calibration."""
        offer_vectors = await self._embed([i.text for i in _items(offers)], "passage")
        need_vectors = await self._embed([i.text for i in _items(needs)], "query")
        calibration = calibrate(need_vectors, await self.background())
        return {
            "model": self.embedder.model_id,
            "offers": offer_vectors.astype(np.float32).tobytes(),
            "needs": need_vectors.astype(np.float32).tobytes(),
            "calibration": calibration.astype(np.float32).tobytes(),
        }

    @staticmethod
    def version(company: dict[str, Any]) -> Any:
        """What changes whenever matching writes a company's document (handlers._upsert)."""
        return (company.get("revision"), company.get("updated_at"))

    def kept_profile(self, company_id: str, version: Any) -> Profile | None:
        """The company's profile (without a participant), if kept at this version."""
        kept = self._profiles.get(company_id)
        if kept is None or kept[0] != version:
            return None
        self._profiles.move_to_end(company_id)
        return kept[1]

    def keep_profile(self, company: dict[str, Any]) -> Profile:
        """The company's profile (without a participant), kept for the next time."""
        profile = self.profile("", company)
        self._profiles[company["_id"]] = (self.version(company), profile)
        self._profiles.move_to_end(company["_id"])
        while len(self._profiles) > PROFILES_KEPT:
            self._profiles.popitem(last=False)
        return profile

    def forget_profile(self, company_id: str) -> None:
        """Erasure (and anything else that removes a company from the read model)."""
        self._profiles.pop(company_id, None)

    def profile(self, participant_id: str, company: dict[str, Any]) -> Profile:
        vectors = company["vectors"]
        dim = self.model.dim
        return Profile(
            participant_id=participant_id,
            company_id=company["_id"],
            company_name=company["legal_name"],
            cluster_id=company["cluster_id"],
            country=company["country"],
            sectors=frozenset(company.get("sectors", [])),
            target_markets=frozenset(company.get("target_markets", [])),
            connection_markets=frozenset(
                c["market"] for c in company.get("connections", []) if c.get("market")
            ),
            offers=_items(company["offers"]),
            needs=_items(company["needs"]),
            offer_vectors=np.frombuffer(vectors["offers"], dtype=np.float32).reshape(-1, dim),
            need_vectors=np.frombuffer(vectors["needs"], dtype=np.float32).reshape(-1, dim),
            need_calibration=np.frombuffer(vectors["calibration"], dtype=np.float32).reshape(-1, 2),
        )
