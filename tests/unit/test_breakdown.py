"""Reporting's arithmetic on small fakes of its collections: who met whom between countries."""

from typing import Any

from c2f_reporting import breakdown


class Found:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def __aiter__(self) -> Any:
        async def each() -> Any:
            for doc in self.docs:
                yield doc

        return each()


class Collection:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def find(self, query: dict[str, Any] | None = None, _fields: Any = None) -> Found:
        return Found([d for d in self.docs if all(d.get(k) == v for k, v in (query or {}).items())])


async def test_each_accepted_meeting_counts_once_for_its_pair_of_countries() -> None:
    db = {
        "companies": Collection(
            [{"_id": "a", "country": "BG"}, {"_id": "b", "country": "ES"}, {"_id": "c", "country": "ES"}]
        ),
        "participants": Collection([{"_id": p, "company_id": p[1]} for p in ("pa", "pb", "pc")]),
        "meetings": Collection(
            [
                {"status": "accepted", "parties": ["pa", "pb"]},
                {"status": "accepted", "parties": ["pb", "pc"]},
                {"status": "declined", "parties": ["pa", "pc"]},
            ]
        ),
    }
    names, cells = await breakdown.country_matrix(db)
    assert names == ["BG", "ES"]
    assert cells == {("BG", "ES"): 1, ("ES", "BG"): 1, ("ES", "ES"): 1}
