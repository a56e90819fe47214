"""Scoring pairs of participants, with hand-made vectors (a small fake of the embedder port)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from c2f_matching import scoring
from c2f_matching.embedder import CachedEmbedder, Role, Vectors
from c2f_matching.scoring import Item, Profile

DIM = 8


def unit(*weights: float) -> Vectors:
    v = np.array(list(weights) + [0.0] * (DIM - len(weights)), dtype=np.float32)
    return v / np.linalg.norm(v)


# Generic offers: mostly other directions, each a little like everything (as real embeddings are).
BACKGROUND = np.stack([unit(0.25 + 0.04 * k, 0.1, *([0.0] * (k - 2)), 1.0) for k in range(2, DIM)])


AIR_NEED = unit(1.0, 0.1)
AIR_OFFER = unit(0.95, 0.2)
PARKING_OFFER = unit(0.6, 0.8)  # shares a little of the need's direction
INSULATION_OFFER = unit(0.0, 0.0, 0.0, 1.0)


def profile(
    pid: str,
    *,
    company: str | None = None,
    country: str = "BG",
    cluster: str = "c1",
    offers: Sequence[tuple[str, Vectors, str | None]] = (),
    needs: Sequence[tuple[str, Vectors]] = (),
    markets: Sequence[str] = (),
    connections: Sequence[str] = (),
    sectors: Sequence[str] = ("ict",),
    obstacles: Sequence[str] = (),
) -> Profile:
    need_vectors = np.stack([v for _, v in needs]) if needs else np.zeros((0, DIM), np.float32)
    return Profile(
        participant_id=pid,
        company_id=company or pid,
        company_name=pid.title(),
        cluster_id=cluster,
        country=country,
        sectors=frozenset(sectors),
        target_markets=frozenset(markets),
        connection_markets=frozenset(connections),
        obstacles=frozenset(obstacles),
        offers=tuple(Item(t, "", c) for t, _, c in offers),
        needs=tuple(Item(t, "", None) for t, _ in needs),
        offer_vectors=np.stack([v for _, v, _ in offers]) if offers else np.zeros((0, DIM), np.float32),
        need_vectors=need_vectors,
        need_calibration=scoring.calibrate(need_vectors, BACKGROUND),
    )


SEEKER = profile("seeker", needs=[("Сензори за въздух", AIR_NEED)], markets=["MX"])
AIR = profile(
    "air", country="ES", cluster="c2", offers=[("Sensores de aire", AIR_OFFER, "air_quality_monitoring")]
)
PARKING = profile(
    "parking",
    country="ES",
    cluster="c2",
    offers=[("Sensores de aparcamiento", PARKING_OFFER, "smart_parking")],
)
INSULATION = profile(
    "insulation", country="IT", cluster="c3", offers=[("Pannelli", INSULATION_OFFER, "insulation_materials")]
)


def test_the_offer_that_means_the_need_fits_best() -> None:
    fits = {p.participant_id: scoring.fit(SEEKER, p).value for p in (AIR, PARKING, INSULATION)}
    assert fits["air"] > fits["parking"] > fits["insulation"]
    assert fits["air"] > 0.9 and fits["insulation"] < 0.1


def test_a_shared_category_helps_an_offer_but_does_not_outweigh_its_meaning() -> None:
    seeker = profile("s", needs=[("Сензори за въздух", AIR_NEED)])
    object.__setattr__(seeker, "needs", (Item("Сензори за въздух", "", "smart_parking"),))
    plain = scoring.fit(SEEKER, PARKING).value
    with_category = scoring.fit(seeker, PARKING).value
    assert with_category > plain, "an offer of the need's own category gains"
    assert scoring.fit(seeker, AIR).value > with_category, "a look-alike of that category stays behind"


def test_nobody_meets_their_own_company() -> None:
    twin = profile("twin", company="seeker", offers=[("Sensores", AIR_OFFER, None)])
    assert scoring.fit(SEEKER, twin).value == 0.0
    assert scoring.pair(SEEKER, twin) is None


def test_a_pair_with_nothing_to_gain_is_not_scored() -> None:
    assert scoring.pair(AIR, PARKING) is None  # two suppliers, no needs


def test_the_partner_who_meets_the_need_comes_first_even_if_it_gains_nothing_back() -> None:
    """Need first: what the other side gains is a bonus, never a reason to bury the answer."""
    seeker = profile(
        "seeker2", needs=[("Сензори", AIR_NEED)], offers=[("Платформа", unit(0, 0, 0, 0, 0.98, 0.1), None)]
    )
    # wants the seeker's platform badly, and offers nothing it needs
    customer = profile(
        "customer",
        country="ES",
        cluster="c2",
        offers=[("Pannelli", INSULATION_OFFER, None)],
        needs=[("Plataforma", unit(0, 0, 0, 0, 1.0))],
    )
    ranked = [p.participant_id for p, _ in scoring.top_pairs(seeker, [customer, AIR], 5)]
    assert ranked == ["air", "customer"]
    one_way = scoring.pair(seeker, AIR)
    assert one_way is not None and one_way.parts["gain_b"] == 0 and one_way.parts["other_side"] == 0


def test_what_the_other_side_gains_breaks_ties() -> None:
    mutual = profile(
        "mutual",
        country="ES",
        cluster="c2",
        offers=[("Sensores", AIR_OFFER, None)],
        needs=[("Plataforma", unit(0, 0, 0, 0, 1.0))],
    )
    seeker = profile(
        "seeker2", needs=[("Сензори", AIR_NEED)], offers=[("Платформа", unit(0, 0, 0, 0, 0.98, 0.1), None)]
    )
    one_way, both_ways = scoring.pair(seeker, AIR), scoring.pair(seeker, mutual)
    assert one_way is not None and both_ways is not None
    assert both_ways.score > one_way.score and both_ways.mutual > one_way.mutual
    assert both_ways.parts["other_side"] > 0 == one_way.parts["other_side"]
    assert {(r.offered_by, r.needed_by) for r in both_ways.reasons} == {
        ("mutual", "seeker2"),
        ("seeker2", "mutual"),
    }


def test_a_supplier_without_needs_sees_who_needs_its_offer() -> None:
    ranked = [p.participant_id for p, _ in scoring.top_pairs(AIR, [INSULATION, PARKING, SEEKER], 5)]
    assert ranked == ["seeker"]


def test_signals_name_markets_borders_and_access() -> None:
    provider = profile(
        "provider",
        country="RS",
        cluster="c9",
        offers=[("Senzori", AIR_OFFER, None)],
        markets=["MX", "CO"],
        connections=["MX"],
        sectors=["environmental_technologies"],
    )
    scored = scoring.pair(SEEKER, provider)
    assert scored is not None
    kinds = {s["kind"]: s for s in scored.signals}
    assert kinds["shared_markets"]["markets"] == ["MX"]
    assert kinds["market_access"] == {
        "kind": "market_access",
        "for": "seeker",
        "from": "provider",
        "markets": ["MX"],
    }
    assert kinds["connects_countries"]["countries"] == ["BG", "RS"]
    assert "complementary_sectors" in kinds
    assert scored.parts["gain_a"] == pytest.approx(
        min(1.0, scoring.fit(SEEKER, provider).value + scoring.MARKET_ACCESS), abs=1e-3
    )


def test_top_pairs_keeps_the_best_k_above_the_threshold() -> None:
    ranked = scoring.top_pairs(SEEKER, [INSULATION, PARKING, AIR], k=1)
    assert [p.participant_id for p, _ in ranked] == ["air"]
    everyone = scoring.top_pairs(SEEKER, [INSULATION, PARKING, AIR], k=10)
    assert "insulation" not in [p.participant_id for p, _ in everyone]
    assert all(max(s.parts["gain_a"], s.parts["gain_b"]) >= scoring.MIN_GAIN for _, s in everyone)


def test_calibration_is_robust_to_a_few_fitting_background_offers() -> None:
    plain = scoring.calibrate(AIR_NEED[None, :], BACKGROUND)[0]
    with_a_fit = scoring.calibrate(AIR_NEED[None, :], np.vstack([BACKGROUND, AIR_OFFER[None, :]]))[0]
    assert with_a_fit[0] == pytest.approx(plain[0], abs=0.03)  # the median barely moves
    assert 0 < with_a_fit[1] < 0.2


class CountingEmbedder:
    model_id, dim = "fake", DIM

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], role: Role) -> Vectors:
        self.calls.append(list(texts))
        return np.stack([unit(len(t), 1.0) for t in texts])


class MemoryCollection:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def find(self, query: dict[str, Any]) -> Any:
        wanted = query["_id"]["$in"]
        docs = [{"_id": k, **self.docs[k]} for k in wanted if k in self.docs]

        async def iterate() -> Any:
            for doc in docs:
                yield doc

        return iterate()

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], upsert: bool) -> None:
        self.docs.setdefault(query["_id"], update["$setOnInsert"])


@pytest.mark.asyncio
async def test_a_text_is_embedded_once() -> None:
    inner, store = CountingEmbedder(), MemoryCollection()
    cached = CachedEmbedder(inner, store)
    first = await cached.embed(["a", "bb", "a"], "passage")
    again = await CachedEmbedder(inner, store).embed(["bb", "a"], "passage")  # a fresh process, same database
    assert inner.calls == [["a", "bb"]]
    assert np.allclose(first[1], again[0]) and np.allclose(first[0], first[2])
    await cached.embed(["a"], "query")  # the role is part of what is embedded
    assert inner.calls[-1] == ["a"]


def test_the_index_finds_the_same_top_partners_as_scoring_everyone() -> None:
    from c2f_matching.index import ProfileIndex

    rng = np.random.default_rng(3)
    people = []
    for i in range(60):
        offers = [(f"o{i}", unit(*rng.standard_normal(DIM)), None)]
        needs = [(f"n{i}", unit(*rng.standard_normal(DIM)))] if i % 2 else []
        people.append(profile(f"p{i}", country=["BG", "ES"][i % 2], offers=offers, needs=needs))
    index = ProfileIndex(people, DIM)
    for me in people[1:12:2]:
        others = [p for p in people if p is not me]
        expected = [(p.participant_id, s.score) for p, s in scoring.top_pairs(me, others, 5)]
        assert [(p.participant_id, s.score) for p, s in index.top(me, 5)] == expected


def test_a_partner_on_the_ground_helps_with_named_obstacles() -> None:
    blocked = profile(
        "blocked", needs=[("Сензори", AIR_NEED)], markets=["MX"], obstacles=["certification", "finance"]
    )
    local = profile("local", country="ES", offers=[("Sensores", PARKING_OFFER, None)], connections=["MX"])
    plain, helped = scoring.gain(SEEKER, local)[0], scoring.gain(blocked, local)[0]
    assert helped == pytest.approx(min(1.0, plain + scoring.OBSTACLE_HELP), abs=1e-6)
    scored = scoring.pair(blocked, local)
    assert scored is not None
    [access] = [s for s in scored.signals if s["kind"] == "market_access"]
    assert access["obstacles"] == ["certification"]  # finance is not what a local partner solves


def test_shortlisting_many_gives_the_partners_scoring_each_one_gives() -> None:
    """`top_pairs` among many scores everyone at once and only a shortlist one by one: the
    partners, their order and their scores must be those of scoring each pair with `pair`."""
    import dataclasses

    rng = np.random.default_rng(11)
    categories = ["sensors", "mobility", None]
    people = []
    for i in range(90):
        offers = [
            (f"o{i}.{j}", unit(*rng.standard_normal(DIM)), categories[(i + j) % 3]) for j in range(i % 3)
        ]
        needs = [(f"n{i}.{j}", unit(*rng.standard_normal(DIM))) for j in range((i // 3) % 3)]
        person = profile(
            f"p{i}",
            company=f"c{i // 2}" if i % 7 == 0 else None,  # a few companies come twice
            country=["BG", "ES", "IT"][i % 3],
            cluster=f"k{i % 4}",
            offers=offers,
            needs=needs,
            markets=[["MX", "CO", "US-CA"][i % 3]] if i % 2 else [],
            connections=[["MX", "CO"][i % 2]] if i % 5 == 0 else [],
            sectors=[["ict", "mobility", "construction"][i % 3]],
            obstacles=["certification"] if i % 4 == 0 else [],
        )
        needs_with_category = tuple(dataclasses.replace(n, category=categories[i % 3]) for n in person.needs)
        people.append(dataclasses.replace(person, needs=needs_with_category))
    found = 0
    for me in people[:30]:
        others = [p for p in people if p is not me]
        one_by_one = [
            (o, s) for o in others if (s := scoring.pair(me, o)) is not None and scoring.worth_meeting(s)
        ]
        one_by_one.sort(key=lambda item: item[1].score, reverse=True)
        for k in (1, 5):
            expected = [(p.participant_id, s.score) for p, s in one_by_one[:k]]
            assert [(p.participant_id, s.score) for p, s in scoring.top_pairs(me, others, k)] == expected
            assert len(others) > scoring.SHORTLIST_FROM * k  # the shortlist was taken
        found += len(one_by_one)
    assert found > 100  # the profiles have partners to find
