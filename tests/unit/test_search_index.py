"""Partner search from memory (`OfferIndex`): best offer per company, filters, the asker left
out, changed and erased companies, and a matrix that stays right after compaction."""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from c2f_matching.search import OfferIndex

DIM = 4
CALIBRATION = (0.0, 0.2)


def unit(*weights: float) -> np.ndarray:
    v = np.array(list(weights) + [0.0] * (DIM - len(weights)), dtype=np.float32)
    return v / np.linalg.norm(v)


def company(cid: str, *offers: tuple[str, np.ndarray], country: str = "ES", **more: Any) -> dict[str, Any]:
    return {
        "_id": cid,
        "legal_name": f"{cid} S.L.",
        "country": country,
        "sectors": more.get("sectors", ["ict"]),
        "target_markets": more.get("target_markets", []),
        "offers": [{"title": t, "description": f"{t}, described"} for t, _ in offers],
        "vectors": {"model": "m", "offers": np.stack([v for _, v in offers]).astype(np.float32).tobytes()},
    }


def found(index: OfferIndex, needle: np.ndarray, limit: int = 10, **filters: Any) -> list[str]:
    return [h.entry.company_id for h in index.search(needle, CALIBRATION, limit, **filters)]


def test_each_company_once_with_its_best_offer() -> None:
    index = OfferIndex(DIM, "m")
    index.put(company("a", ("far", unit(0, 1)), ("close", unit(1, 0.1))))
    index.put(company("b", ("middle", unit(1, 0.8))))
    hits = index.search(unit(1, 0), CALIBRATION, 10)
    assert [(h.entry.company_id, h.entry.offers[h.offer][0]) for h in hits] == [
        ("a", "close"),
        ("b", "middle"),
    ]
    assert hits[0].score > hits[1].score
    assert found(index, unit(1, 0), limit=1) == ["a"]


def test_filters_and_the_asker() -> None:
    index = OfferIndex(DIM, "m")
    index.put(company("a", ("x", unit(1, 0)), country="ES", target_markets=["MX"]))
    index.put(company("b", ("y", unit(1, 0.2)), country="IT", sectors=["energy"]))
    assert found(index, unit(1, 0), country="IT") == ["b"]
    assert found(index, unit(1, 0), sector="energy") == ["b"]
    assert found(index, unit(1, 0), target_market="MX") == ["a"]
    assert found(index, unit(1, 0), target_market="MX", country="IT") == []
    assert found(index, unit(1, 0), exclude=["a"]) == ["b"]


def test_a_changed_company_is_found_by_its_new_offer_and_an_erased_one_not_at_all() -> None:
    index = OfferIndex(DIM, "m")
    index.put(company("a", ("sensors", unit(1, 0))))
    index.put(company("b", ("panels", unit(0, 1))))
    index.put(company("a", ("insulation", unit(0, 0, 1))))
    assert found(index, unit(1, 0), limit=1) == ["b"]
    assert [h.entry.offers[h.offer][0] for h in index.search(unit(0, 0, 1), CALIBRATION, 1)] == ["insulation"]
    index.remove("b")
    assert found(index, unit(0, 1)) == ["a"] and len(index) == 1


def test_vectors_of_another_model_are_left_out() -> None:
    index = OfferIndex(DIM, "m")
    index.put({**company("old", ("x", unit(1, 0))), "vectors": {"model": "before", "offers": b""}})
    assert len(index) == 0


def test_compaction_keeps_every_company_findable() -> None:
    index = OfferIndex(DIM, "m")
    rng = np.random.default_rng(1)
    vectors = {f"c{i}": unit(*rng.standard_normal(DIM)) for i in range(3000)}
    for cid, v in vectors.items():
        index.put(company(cid, ("o1", v), ("o2", -v)))
    for i in range(0, 3000, 2):  # erase half: compaction happens on the way
        index.remove(f"c{i}")
    assert len(index) == 1500
    for cid in ["c1", "c777", "c2999"]:
        assert found(index, vectors[cid], limit=1) == [cid]
    assert found(index, vectors["c2"], limit=1) != ["c2"]


class Companies:
    """matching's `companies` and `erasures` collections, as far as `OfferIndex.sync` reads them."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.erased: dict[str, dict[str, Any]] = {}

    def __getitem__(self, name: str) -> "Companies.Collection":
        return self.Collection(self.docs if name == "companies" else self.erased)

    class Collection:
        def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
            self.docs = docs

        def find(self, query: dict[str, Any], projection: Any = None) -> Any:
            def matches(doc: dict[str, Any]) -> bool:
                for field, condition in query.items():
                    if field == "_id" and doc["_id"] not in condition["$in"]:
                        return False
                    if field != "_id" and doc[field] < condition["$gte"]:
                        return False
                return True

            chosen = [d for d in self.docs.values() if matches(d)]

            async def iterate() -> Any:
                for doc in chosen:
                    yield doc

            return iterate()


@pytest.mark.asyncio
async def test_sync_takes_in_changes_late_writes_and_erasures_and_reload_starts_afresh() -> None:
    db, index = Companies(), OfferIndex(DIM, "m")
    at = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    db.docs["a"] = {**company("a", ("sensors", unit(1, 0))), "revision": 1, "updated_at": at}
    await index.sync(db)
    assert found(index, unit(1, 0)) == ["a"]
    # written a minute later, stamped before "a" (its transaction started earlier)
    db.docs["b"] = {
        **company("b", ("panels", unit(0, 1))),
        "revision": 1,
        "updated_at": at - timedelta(seconds=60),
    }
    await index.sync(db)
    assert found(index, unit(0, 1), limit=1) == ["b"]
    del db.docs["a"]
    db.erased["a"] = {"_id": "a", "erased_at": at + timedelta(seconds=5)}
    await index.sync(db)
    assert found(index, unit(1, 0)) == ["b"]
    del db.docs["b"]  # a rebuilt read model without it, and no tombstone
    await index.reload(db)
    assert len(index) == 0
