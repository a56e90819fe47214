"""Matching quality on the labelled sets (eval/matching/v1 and v2), both splits: the guard
that keeps the platform's ranking at or above the bare model and at the targets of
docs/matching-evaluation.md, for recommendations and for partner search alike."""

import pytest

from eval_matching import SETS, SPLITS, Metrics, measure

pytestmark = pytest.mark.timeout(600)  # the model embeds both sets once, in the first test

PLATFORM = ("platform: recommendations", "platform: search")
RAW = "raw model (e5-small cosine)"
TARGETS = {"hit_at_1": 0.80, "hit_at_5": 0.95, "mrr": 0.85}
MOST_DECOY_WINS = 0.10


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str, str], Metrics]:
    return measure(SETS)


@pytest.mark.parametrize("ranker", PLATFORM)
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("labelled", SETS)
def test_the_platform_never_ranks_below_the_bare_model(
    results: dict[tuple[str, str, str], Metrics], labelled: str, split: str, ranker: str
) -> None:
    ours, raw = results[(labelled, split, ranker)], results[(labelled, split, RAW)]
    for figure in TARGETS:
        assert getattr(ours, figure) >= getattr(raw, figure), f"{figure}: {ours} against the raw model {raw}"
    assert ours.decoy_above <= raw.decoy_above, f"decoys: {ours} against the raw model {raw}"


@pytest.mark.parametrize("ranker", PLATFORM)
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("labelled", SETS)
def test_the_platform_reaches_the_targets(
    results: dict[tuple[str, str, str], Metrics], labelled: str, split: str, ranker: str
) -> None:
    ours = results[(labelled, split, ranker)]
    assert ours.queries >= 20
    for figure, target in TARGETS.items():
        assert getattr(ours, figure) >= target, f"{figure} below {target}: {ours}"
    assert ours.decoy_above <= MOST_DECOY_WINS, f"decoys win too often: {ours}"
