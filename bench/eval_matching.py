"""How right is matching? hit@1, hit@5, MRR and decoy wins on the labelled sets in
eval/matching/, for the platform's own ranking and for baselines, in the same run.

Each set (see eval/matching/README.md) has fictional member profiles and, for each
profile with a need (a query), the profiles whose offers meet it (`relevant`) and
look-alikes that share its words but not its meaning (`decoys`). Every query is in
the `tune` or the `test` split: choices were made on `tune` only; `test` shows
whether they hold on profiles nothing was tuned on.

Rankers, all on the same texts and vectors:

- **platform: recommendations**: what `GET /participants/{id}/recommendations`
  ranks for the query's participant (`scoring.top_pairs`, vectors from
  `Matcher.encode`: language-neutral, calibrated, need first); partners it would
  not show count as not found.
- **platform: search**: what `GET /search?q=<the need's text>` ranks (the
  service's `OfferIndex`, the query's language detected, the asker left out).
- **raw model**: the cosine of multilingual-e5-small, need as query and offer as
  passage, nothing on top: the baseline the platform must never fall below.
- **raw model, language means removed**: the remedy alone (ablation).
- **BM25**: the lexical baseline.

"decoy above" is the share of queries with decoys in which a decoy ranks above the
first relevant profile (or is shown while no relevant one is).

Usage: .venv/bin/python bench/eval_matching.py [--sets v1 v2] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from c2f_matching import scoring
from c2f_matching.embedder import E5Embedder, Embedder, Vectors
from c2f_matching.language import LanguageCentres
from c2f_matching.matcher import Matcher
from c2f_matching.scoring import calibrate
from c2f_matching.search import OfferIndex

console = Console(stderr=True)
EVAL = Path(__file__).resolve().parents[1] / "eval" / "matching"
SETS = ("v1", "v2")
SPLITS = ("tune", "test")
Ranker = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class LabelledSet:
    name: str
    profiles: dict[str, dict[str, Any]]
    queries: list[dict[str, Any]]

    @classmethod
    def load(cls, name: str) -> LabelledSet:
        folder = EVAL / name
        profiles = json.loads((folder / "profiles.json").read_text("utf-8"))
        queries = json.loads((folder / "relevance.json").read_text("utf-8"))["queries"]
        return cls(name, {p["id"]: p for p in profiles}, queries)


@dataclass(frozen=True)
class Metrics:
    hit_at_1: float
    hit_at_5: float
    mrr: float
    decoy_above: float
    queries: int

    def row(self) -> list[str]:
        return [
            f"{self.hit_at_1:.2f}",
            f"{self.hit_at_5:.2f}",
            f"{self.mrr:.2f}",
            f"{self.decoy_above:.0%}",
            str(self.queries),
        ]


def evaluate(rank: Ranker, data: LabelledSet, split: str | None) -> Metrics:
    hits1, hits5, rr, decoys = [], [], [], []
    queries = [q for q in data.queries if split is None or q["split"] == split]
    for query in queries:
        ranking = rank(data.profiles[query["profile"]])
        relevant = set(query["relevant"])
        first = next((i for i, pid in enumerate(ranking) if pid in relevant), None)
        hits1.append(first == 0)
        hits5.append(first is not None and first < 5)
        rr.append(0.0 if first is None else 1.0 / (first + 1))
        if query.get("decoys"):
            shown = [ranking.index(d) for d in query["decoys"] if d in ranking]
            decoys.append(any(first is None or d < first for d in shown))
    return Metrics(
        float(np.mean(hits1)),
        float(np.mean(hits5)),
        float(np.mean(rr)),
        float(np.mean(decoys)) if decoys else 0.0,
        len(queries),
    )


# --- the lexical baseline ------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return [w for w in _WORD.findall(plain) if len(w) > 2]


def item_text(item: dict[str, Any]) -> str:
    return f"{item['title']}. {item['description']}"


def bm25_ranker(data: LabelledSet, k1: float = 1.5, b: float = 0.75) -> Ranker:
    docs = {pid: Counter(tokens(" ".join(map(item_text, p["offers"])))) for pid, p in data.profiles.items()}
    lengths = {pid: sum(c.values()) for pid, c in docs.items()}
    average = sum(lengths.values()) / len(lengths)
    df = Counter(t for c in docs.values() for t in c)
    n = len(docs)

    def idf(term: str) -> float:
        return math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))

    def rank(me: dict[str, Any]) -> list[str]:
        query = tokens(" ".join(map(item_text, me["needs"])))
        scores = {
            pid: sum(
                idf(t) * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * lengths[pid] / average))
                for t in query
                if t in tf
            )
            for pid, tf in docs.items()
            if pid != me["id"]
        }
        return sorted(scores, key=lambda pid: -scores[pid])

    return rank


# --- the model, bare and with language means removed ----------------------------------------


def cosine_ranker(
    data: LabelledSet, vectors: Callable[[list[dict[str, Any]], str, str], Vectors], kind: str
) -> Ranker:
    """Each profile ranked by its best need↔offer cosine (vectors as `vectors` gives them)."""
    offers = {pid: vectors(p["offers"], "passage", p["language"]) for pid, p in data.profiles.items()}

    def rank(me: dict[str, Any]) -> list[str]:
        needs = vectors(me["needs"], "query", me["language"])
        scores = {
            pid: float((needs @ rows.T).max()) if len(rows) else -1.0
            for pid, rows in offers.items()
            if pid != me["id"]
        }
        return sorted(scores, key=lambda pid: -scores[pid])

    return rank


# --- the platform ----------------------------------------------------------------------------


def company_document(p: dict[str, Any], vectors: dict[str, Any]) -> dict[str, Any]:
    """A profile of the set as matching's read model holds a company (handlers._upsert)."""
    language = p["language"].split("-")[0]
    return {
        "_id": p["id"],
        "legal_name": p["company"],
        "cluster_id": p.get("cluster", p["country"]),
        "country": p["country"],
        "sectors": p["sectors"],
        "target_markets": p.get("target_markets", []),
        "connections": [],
        "offers": [{**o, "language": language} for o in p["offers"]],
        "needs": [{**n, "language": language} for n in p["needs"]],
        "vectors": vectors,
    }


class Platform:
    """The service's own code paths on one labelled set, with vectors kept in memory."""

    def __init__(self, model: Embedder, data: LabelledSet) -> None:
        self.matcher = Matcher(model, LanguageCentres.shipped())
        self.matcher.bind(None)
        self.data = data
        self.companies: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        for p in self.data.profiles.values():
            doc = company_document(p, {})
            doc["vectors"] = await self.matcher.encode(doc["offers"], doc["needs"])
            self.companies[p["id"]] = doc
        self.profiles = {pid: self.matcher.profile(pid, doc) for pid, doc in self.companies.items()}
        self.index = OfferIndex(self.matcher.model.dim, self.matcher.vectors_id)
        for doc in self.companies.values():
            self.index.put(doc)
        self.background = await self.matcher.background()
        self.needles: dict[str, list[tuple[Vectors, tuple[float, float]]]] = {}
        for p in self.data.profiles.values():
            texts = [item_text(n) for n in p["needs"]]
            if texts:
                vectors = await self.matcher.embed(texts, "query")  # no language given, as in a search
                calibration = calibrate(vectors, self.background)
                self.needles[p["id"]] = [
                    (v, (float(c[0]), float(c[1]))) for v, c in zip(vectors, calibration, strict=True)
                ]

    def recommendations(self, me: dict[str, Any]) -> list[str]:
        mine = self.profiles[me["id"]]
        others = [p for pid, p in self.profiles.items() if pid != me["id"]]
        return [p.company_id for p, _ in scoring.top_pairs(mine, others, len(others))]

    def search(self, me: dict[str, Any]) -> list[str]:
        best: dict[str, float] = {}
        for needle, calibration in self.needles[me["id"]]:
            for hit in self.index.search(needle, calibration, len(self.companies), exclude=[me["id"]]):
                best[hit.entry.company_id] = max(best.get(hit.entry.company_id, 0.0), hit.score)
        return sorted(best, key=lambda pid: -best[pid])


async def rankers(model: Embedder, data: LabelledSet) -> dict[str, Ranker]:
    platform = Platform(model, data)
    await platform.load()
    raw = platform.matcher.embedder  # the model's own vectors, embedded once for every ranker
    centres = platform.matcher.centres
    assert centres is not None
    cache: dict[tuple[str, str, str], Vectors] = {}
    for p in data.profiles.values():
        for role, items in (("passage", p["offers"]), ("query", p["needs"])):
            for item in items:
                cache[(item_text(item), role, p["language"])] = (await raw.embed([item_text(item)], role))[0]  # type: ignore[arg-type]

    def bare(items: list[dict[str, Any]], role: str, language: str) -> Vectors:
        if not items:
            return np.zeros((0, model.dim), np.float32)
        return np.stack([cache[(item_text(i), role, language)] for i in items])

    def neutral(items: list[dict[str, Any]], role: str, language: str) -> Vectors:
        texts = [item_text(i) for i in items]
        return centres.neutral(texts, bare(items, role, language), role, [language] * len(texts))  # type: ignore[arg-type]

    return {
        "platform: recommendations": platform.recommendations,
        "platform: search": platform.search,
        "raw model (e5-small cosine)": cosine_ranker(data, bare, "raw"),
        "raw model, language means removed": cosine_ranker(data, neutral, "neutral"),
        "BM25": bm25_ranker(data),
    }


def measure(sets: Sequence[str]) -> dict[tuple[str, str, str], Metrics]:
    """(set, split, ranker) → metrics, every ranker in this one run."""
    model = E5Embedder()
    results: dict[tuple[str, str, str], Metrics] = {}
    for name in sets:
        data = LabelledSet.load(name)
        started = time.perf_counter()
        ranked = asyncio.run(rankers(model, data))
        console.print(
            f"{name}: {len(data.profiles)} profiles, {len(data.queries)} queries, "
            f"embedded in {time.perf_counter() - started:.0f} s"
        )
        for split in SPLITS:
            for ranker, rank in ranked.items():
                results[(name, split, ranker)] = evaluate(rank, data, split)
    return results


HEADERS = ["set", "split", "ranker", "hit@1", "hit@5", "MRR", "decoy above", "queries"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="folders under eval/matching")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs/)")
    args = parser.parse_args()
    results = measure(args.sets)
    rows = [[name, split, ranker, *m.row()] for (name, split, ranker), m in results.items()]
    if args.markdown:
        print("| " + " | ".join(HEADERS) + " |")
        print("|" + "---|" * len(HEADERS))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    table = Table(*HEADERS)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
