"""Matching keeps each company's scoring profile in memory, keyed by the version of its
document, so scoring an event does not read every profile again; a changed or erased company
is never scored from a stale copy, and memory stays bounded."""

from datetime import UTC, datetime
from typing import Any

import numpy as np

from c2f_matching import matcher as matcher_module
from c2f_matching.embedder import Role, Vectors
from c2f_matching.matcher import Matcher


class TinyEmbedder:
    model_id = "tiny"
    dim = 2

    def embed(self, texts: Any, role: Role) -> Vectors:
        vectors: Vectors = np.full((len(texts), 2), np.sqrt(0.5), np.float32)
        return vectors


def company(company_id: str, revision: int, title: str) -> dict[str, Any]:
    vectors = np.ones((1, 2), np.float32).tobytes()
    return {
        "_id": company_id,
        "revision": revision,
        "updated_at": datetime(2027, 1, 1, 9, revision, tzinfo=UTC),
        "legal_name": f"{company_id} Ltd",
        "cluster_id": "c",
        "country": "BG",
        "offers": [{"title": title, "description": "d"}],
        "needs": [],
        "vectors": {"offers": vectors, "needs": b"", "calibration": b""},
    }


def test_a_profile_is_used_only_at_the_version_it_was_kept() -> None:
    m = Matcher(TinyEmbedder())
    first = company("a", 1, "Sensors")
    assert m.kept_profile("a", Matcher.version(first)) is None
    m.keep_profile(first)
    kept = m.kept_profile("a", Matcher.version(first))
    assert kept is not None and kept.offers[0].title == "Sensors"
    changed = company("a", 2, "Insulation")
    assert m.kept_profile("a", Matcher.version(changed)) is None, "a changed company is read again"
    m.keep_profile(changed)
    again = m.kept_profile("a", Matcher.version(changed))
    assert again is not None and again.offers[0].title == "Insulation"
    m.forget_profile("a")
    assert m.kept_profile("a", Matcher.version(changed)) is None, "erased means gone from memory too"


def test_the_least_recently_used_profiles_go_first(monkeypatch: Any) -> None:
    monkeypatch.setattr(matcher_module, "PROFILES_KEPT", 3)
    m = Matcher(TinyEmbedder())
    docs = {k: company(k, 1, "x") for k in "abcd"}
    for k in "abc":
        m.keep_profile(docs[k])
    assert m.kept_profile("a", Matcher.version(docs["a"])) is not None  # a is used again
    m.keep_profile(docs["d"])  # one too many: b, the least recently used, goes
    assert m.kept_profile("b", Matcher.version(docs["b"])) is None
    assert all(m.kept_profile(k, Matcher.version(docs[k])) is not None for k in "acd")
