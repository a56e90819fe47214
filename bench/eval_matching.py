"""How right is matching? Precision@5, recall@10 and MRR on the labelled set in eval/matching/,
for the matcher and for a plain lexical baseline (BM25), in the same run.

For each profile with needs (a query), every other profile is ranked by what the
query gains from it; the relevant profiles are those a cluster manager would pair
with it. Figures are given over all relevant pairs and over cross-language pairs
only (the relevant profile is written in another language), where a keyword
matcher cannot help. "Decoys above" is the share of decoys (same words, other
meaning) ranked above the query's first relevant profile.

Usage: .venv/bin/python bench/eval_matching.py [--data eval/matching]
"""

import argparse
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
from c2f_matching.embedder import E5Embedder
from c2f_matching.matcher import background_texts
from c2f_matching.scoring import Item, Profile

console = Console()
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "eval" / "matching"
Ranker = Callable[[dict[str, Any], list[dict[str, Any]]], list[str]]


@dataclass
class Metrics:
    precision_at_5: float
    recall_at_10: float
    mrr: float
    decoys_above: float
    queries: int


def evaluate(
    rank: Ranker, profiles: dict[str, dict[str, Any]], queries: list[dict[str, Any]], cross_language: bool
) -> Metrics:
    p5, r10, rr, decoys, counted = [], [], [], [], 0
    for query in queries:
        me = profiles[query["profile"]]
        relevant = [
            r for r in query["relevant"] if not cross_language or profiles[r]["language"] != me["language"]
        ]
        if not relevant:
            continue
        counted += 1
        others = [p for pid, p in profiles.items() if pid != me["id"]]
        ranking = rank(me, others)
        top5, top10 = ranking[:5], ranking[:10]
        p5.append(sum(r in relevant for r in top5) / 5)
        r10.append(sum(r in top10 for r in relevant) / len(relevant))
        first = next((i for i, pid in enumerate(ranking) if pid in relevant), None)
        rr.append(0.0 if first is None else 1.0 / (first + 1))
        if query.get("decoys") and first is not None:
            decoys.append(sum(ranking.index(d) < first for d in query["decoys"]) / len(query["decoys"]))
    return Metrics(
        float(np.mean(p5)),
        float(np.mean(r10)),
        float(np.mean(rr)),
        float(np.mean(decoys)) if decoys else 0.0,
        counted,
    )


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return [w for w in _WORD.findall(plain) if len(w) > 2]


def offers_text(profile: dict[str, Any]) -> str:
    return " ".join(f"{o['title']} {o['description']}" for o in profile["offers"])


def needs_text(profile: dict[str, Any]) -> str:
    return " ".join(f"{n['title']} {n['description']}" for n in profile["needs"])


def bm25_ranker(profiles: Sequence[dict[str, Any]], k1: float = 1.5, b: float = 0.75) -> Ranker:
    docs = {p["id"]: Counter(tokens(offers_text(p))) for p in profiles}
    lengths = {pid: sum(c.values()) for pid, c in docs.items()}
    average = sum(lengths.values()) / len(lengths)
    df = Counter(t for c in docs.values() for t in c)
    n = len(docs)

    def idf(term: str) -> float:
        return math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))

    def rank(me: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
        query = tokens(needs_text(me))
        scores = {}
        for other in others:
            tf, length = docs[other["id"]], lengths[other["id"]]
            scores[other["id"]] = sum(
                idf(t) * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * length / average))
                for t in query
                if t in tf
            )
        return sorted(scores, key=lambda pid: -scores[pid])

    return rank


def matcher_rankers(
    profiles: Sequence[dict[str, Any]], variant: str = "original"
) -> tuple[Ranker, Ranker, float]:
    """Ranking by what the query gains (fit and market access), and by the reciprocal pair score."""
    model = E5Embedder(variant)
    background = model.embed(background_texts(), "passage")
    started = time.perf_counter()
    built: dict[str, Profile] = {}
    texts = 0
    for p in profiles:
        offers = tuple(Item(o["title"], o["description"], o.get("category")) for o in p["offers"])
        needs = tuple(Item(n["title"], n["description"], None) for n in p["needs"])
        need_vectors = model.embed([n.text for n in needs], "query")
        texts += len(offers) + len(needs)
        built[p["id"]] = Profile(
            participant_id=p["id"],
            company_id=p["id"],
            company_name=p["company"],
            cluster_id=p["country"],
            country=p["country"],
            sectors=frozenset(p["sectors"]),
            target_markets=frozenset(p.get("target_markets", [])),
            offers=offers,
            needs=needs,
            offer_vectors=model.embed([o.text for o in offers], "passage"),
            need_vectors=need_vectors,
            need_calibration=scoring.calibrate(need_vectors, background),
        )
    rate = texts / (time.perf_counter() - started)

    def by_gain(me: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
        mine = built[me["id"]]
        scores = {o["id"]: scoring.gain(mine, built[o["id"]])[0] for o in others}
        return sorted(scores, key=lambda pid: -scores[pid])

    def by_pair(me: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
        mine = built[me["id"]]
        scores = {}
        for o in others:
            scored = scoring.pair(mine, built[o["id"]])
            scores[o["id"]] = scored.score if scored else 0.0
        return sorted(scores, key=lambda pid: -scores[pid])

    return by_gain, by_pair, rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with profiles.json and relevance.json"
    )
    args = parser.parse_args()
    profile_list = json.loads((args.data / "profiles.json").read_text("utf-8"))
    queries = json.loads((args.data / "relevance.json").read_text("utf-8"))["queries"]
    profiles = {p["id"]: p for p in profile_list}
    console.print(f"{len(profiles)} profiles, {len(queries)} queries; embedding…")
    by_gain, by_pair, rate = matcher_rankers(profile_list)
    alternative, _, _ = matcher_rankers(profile_list, "enpt")
    rankers = {
        "BM25 (lexical baseline)": bm25_ranker(profile_list),
        "matcher: what the query gains": by_gain,
        "matcher: reciprocal pair score": by_pair,
        "alternative model (e5-small en/pt tune): gains": alternative,
    }
    table = Table("ranker", "pairs", "P@5", "R@10", "MRR", "decoys above", "queries")
    for scope, cross in (("all", False), ("cross-language", True)):
        for name, rank in rankers.items():
            m = evaluate(rank, profiles, queries, cross)
            table.add_row(
                name,
                scope,
                f"{m.precision_at_5:.3f}",
                f"{m.recall_at_10:.3f}",
                f"{m.mrr:.3f}",
                f"{m.decoys_above:.2f}",
                str(m.queries),
            )
    console.print(table)
    console.print(f"embedding throughput: {rate:.0f} texts/s (multilingual-e5-small, 4-bit, this machine)")


if __name__ == "__main__":
    main()
