"""Cluster-to-cluster matching: which cluster complements another most, and the reasons a
delegation reads (hand-made vectors, as in test_scoring)."""

import numpy as np

from c2f_matching import clusters
from c2f_matching.clusters import Cluster
from tests.unit.test_scoring import AIR_NEED, AIR_OFFER, INSULATION_OFFER, PARKING_OFFER, profile, unit

PLATFORM_NEED, PLATFORM_OFFER = unit(0, 0, 0, 0, 1.0), unit(0, 0, 0, 0, 0.98, 0.1)


def cluster(cid: str, country: str, *members: object) -> Cluster:
    return Cluster(cid, f"Cluster {cid}", country, tuple(members))  # type: ignore[arg-type]


MINE = cluster(
    "bg",
    "BG",
    profile("Sofia Air", needs=[("Сензори за въздух", AIR_NEED)], markets=["MX", "CO"], cluster="bg"),
    profile("Plovdiv Air", needs=[("Станции за въздух", AIR_NEED)], markets=["MX"], cluster="bg"),
    profile("Varna Data", offers=[("Градска платформа", PLATFORM_OFFER, None)], cluster="bg"),
)
COMPLEMENT = cluster(
    "es",
    "ES",
    profile(
        "Aire Madrid", country="ES", offers=[("Estaciones de aire", AIR_OFFER, None)], connections=["MX"]
    ),
    profile("Ciudad Datos", country="ES", needs=[("Plataforma urbana", PLATFORM_NEED)]),
)
LOOKALIKE = cluster(
    "it",
    "IT",
    profile("Parcheggi", country="IT", offers=[("Sensori parcheggio", PARKING_OFFER, None)]),
    profile("Isola", country="IT", offers=[("Pannelli isolanti", INSULATION_OFFER, None)]),
)


def test_the_cluster_that_meets_our_members_needs_and_needs_our_offers_ranks_first() -> None:
    ranked = clusters.rank(MINE, [LOOKALIKE, MINE, COMPLEMENT], k=5)
    assert ranked[0][0].cluster_id == "es"
    assert "bg" not in [c.cluster_id for c, _ in ranked], "a cluster is not its own partner"
    found = ranked[0][1]
    assert found.served.seekers == 2 and found.served.providers == 1
    assert found.serves.seekers == 1 and found.serves.providers == 1
    assert found.markets == ("MX",) and found.members_to_markets == 2
    assert found.parts["served"] > 0.9 and found.parts["access"] == 1.0


def test_the_reasons_say_who_needs_what_and_which_markets_open() -> None:
    found = clusters.complementarity(MINE, COMPLEMENT)
    lines = clusters.explain(found, {"MX": "Mexico"})
    assert lines[0].startswith("2 of your members need what 1 of theirs offer: “Estaciones de aire”")
    assert lines[1].startswith("1 of their members need what 1 of yours offer: “Градска платформа”")
    assert lines[2] == "they work in Mexico, which 2 of your members target"


def test_members_already_working_together_are_named() -> None:
    tied = cluster("bg", "BG", *MINE.members[:2], profile("Varna Data", cluster="bg"))
    object.__setattr__(tied.members[2], "partner_names", frozenset({"aire madrid"}))
    found = clusters.complementarity(tied, COMPLEMENT)
    assert found.ties == ("Aire Madrid",) and found.parts["ties"] == 1.0
    assert clusters.explain(found)[-1] == "your members already work with theirs: Aire Madrid"


def test_clusters_with_nothing_in_common_are_not_proposed() -> None:
    empty = cluster("gr", "GR")
    assert clusters.rank(MINE, [empty], k=5) == []
    assert np.isclose(clusters.complementarity(empty, MINE).score, 0.0)
