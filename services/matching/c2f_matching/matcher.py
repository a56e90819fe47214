"""Between the read model and the scoring: text vectors for a profile, and profiles to score.

Vectors are computed once per text (CachedEmbedder), made language-neutral
(`language.LanguageCentres`) and stored with the company in matching's own
database, so scoring an event needs no model calls. `vectors_id` names the model
and the language means: a company stored with other vectors is encoded again at
start (`refresh_vectors`).
"""

import json
from collections import OrderedDict
from importlib import resources
from typing import Any

import numpy as np

from c2f_matching.embedder import CachedEmbedder, Embedder, Role, Vectors
from c2f_matching.language import LanguageCentres
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
    def __init__(self, model: Embedder, centres: LanguageCentres | None = None) -> None:
        """`centres`: the model's language means (None: vectors are compared as they come)."""
        if centres is not None and centres.model_id != model.model_id:
            raise ValueError(
                f"the language means are for {centres.model_id}, not {model.model_id}: "
                "rebuild them with `python -m c2f_matching.language`"
            )
        self.model = model
        self.centres = centres
        self.vectors_id = f"{model.model_id}+neutral-v1" if centres else model.model_id
        self._embedder: CachedEmbedder | None = None
        self._background: Vectors | None = None
        # company id → (its document's version, its profile): scoring an event reads each
        # company's document again only when it changed.
        self._profiles: OrderedDict[str, tuple[Any, Profile]] = OrderedDict()

    def bind(self, cache: Any) -> None:
        """Keep computed vectors in `cache` (a collection of matching's database; None: in
        memory only)."""
        self._embedder = CachedEmbedder(self.model, cache)

    @property
    def embedder(self) -> CachedEmbedder:
        if self._embedder is None:
            raise RuntimeError("matcher not bound to its database")
        return self._embedder

    async def embed(self, texts: list[str], role: Role, languages: list[str | None] | None = None) -> Vectors:
        """Language-neutral vectors of `texts`; `languages`: what their authors declared (None:
        detect)."""
        vectors = await self.embedder.embed(texts, role)
        if self.centres is None:
            return vectors
        return self.centres.neutral(texts, vectors, role, languages or [None] * len(texts))

    async def background(self) -> Vectors:
        if self._background is None:
            self._background = await self.embed(background_texts(), "passage")
        return self._background

    async def encode(self, offers: list[dict[str, Any]], needs: list[dict[str, Any]]) -> dict[str, Any]:
        """What the company document keeps: offer and need vectors and the needs' calibration."""
        offer_vectors = await self.embed(
            [i.text for i in _items(offers)], "passage", [o.get("language") for o in offers]
        )
        need_vectors = await self.embed(
            [i.text for i in _items(needs)], "query", [n.get("language") for n in needs]
        )
        calibration = calibrate(need_vectors, await self.background())
        return {
            "model": self.vectors_id,
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
            obstacles=frozenset(o["kind"] for o in company.get("obstacles", []) if o.get("kind")),
            partner_names=frozenset(
                c["organisation"].casefold() for c in company.get("connections", []) if c.get("organisation")
            ),
            offers=_items(company["offers"]),
            needs=_items(company["needs"]),
            offer_vectors=np.frombuffer(vectors["offers"], dtype=np.float32).reshape(-1, dim),
            need_vectors=np.frombuffer(vectors["needs"], dtype=np.float32).reshape(-1, dim),
            need_calibration=np.frombuffer(vectors["calibration"], dtype=np.float32).reshape(-1, 2),
        )
