"""Matching quality on the labelled set (eval/matching): a guard against regressions.

The matcher must find cross-language partners far better than a keyword baseline;
see docs/matching-evaluation.md for the figures these thresholds sit below.
"""

import json

from eval_matching import DEFAULT_DATA, bm25_ranker, evaluate, matcher_rankers


def test_the_matcher_beats_keywords_across_languages_by_far() -> None:
    profile_list = json.loads((DEFAULT_DATA / "profiles.json").read_text("utf-8"))
    queries = json.loads((DEFAULT_DATA / "relevance.json").read_text("utf-8"))["queries"]
    profiles = {p["id"]: p for p in profile_list}
    by_gain, _, _ = matcher_rankers(profile_list)
    matcher = evaluate(by_gain, profiles, queries, cross_language=True)
    baseline = evaluate(bm25_ranker(profile_list), profiles, queries, cross_language=True)
    assert matcher.queries >= 40
    assert matcher.mrr >= 0.6 and matcher.mrr >= 2.5 * baseline.mrr
    assert matcher.recall_at_10 >= 0.8 > baseline.recall_at_10
    assert matcher.decoys_above < baseline.decoys_above
