"""Top-10 partners for one participant, and partner search, among N profiles; and
embedding throughput.

N = 1,000, 10,000 and 100,000 synthetic profiles (1-2 offers, 0-2 needs each, random
unit vectors of the model's width, calibrated as real needs are). For each N: the
p50 and p99 time of `ProfileIndex.top(me, 10)` over 100 participants, and of
`OfferIndex.search` (what `GET /search` does once its query is embedded: top 20
companies, with and without a country filter), beside a brute-force NumPy dot
product of the same needs with every offer (the least any exact search must do),
and the indexes' memory.

Usage: .venv/bin/python bench/matching_scale.py [--sizes 1000 10000 100000]
"""

import argparse
import time

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from c2f_matching.embedder import E5Embedder
from c2f_matching.index import ProfileIndex
from c2f_matching.scoring import Item, Profile
from c2f_matching.search import OfferIndex

DIM = 384
console = Console()
rng = np.random.default_rng(7)
OFFER, NEED = Item("offer", "", None), Item("need", "", None)


def vectors(n: int) -> NDArray[np.float32]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    normalised: NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return normalised


def synthetic(n: int) -> list[Profile]:
    profiles = []
    for i in range(n):
        offers, needs = int(rng.integers(1, 3)), int(rng.integers(0, 3))
        calibration = np.tile(np.array([[0.0, 0.05]], np.float32), (needs, 1))
        profiles.append(
            Profile(
                participant_id=f"p{i}",
                company_id=f"c{i}",
                company_name=f"Company {i}",
                cluster_id=f"k{i % 10}",
                country=["BG", "ES", "RS", "IT", "GR"][i % 5],
                sectors=frozenset({"ict"}),
                target_markets=frozenset({["MX", "CO", "US-CA"][i % 3]}),
                offers=(OFFER,) * offers,
                needs=(NEED,) * needs,
                offer_vectors=vectors(offers),
                need_vectors=vectors(needs),
                need_calibration=calibration,
            )
        )
    return profiles


def company_document(p: Profile) -> dict[str, object]:
    """The profile as matching's read model holds a company (what OfferIndex takes)."""
    return {
        "_id": p.company_id,
        "legal_name": p.company_name,
        "country": p.country,
        "sectors": sorted(p.sectors),
        "target_markets": sorted(p.target_markets),
        "offers": [{"title": o.title, "description": o.description} for o in p.offers],
        "vectors": {"offers": p.offer_vectors.tobytes()},
    }


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 99) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    table = Table(
        "profiles",
        "top-10 p50 / p99 (ms)",
        "search p50 / p99 (ms)",
        "search, one country p50 / p99 (ms)",
        "brute-force dot p50 / p99 (ms)",
        "ratio p99 (top-10, search)",
        "index memory",
    )
    for n in args.sizes:
        profiles = synthetic(n)
        index = ProfileIndex(profiles, DIM)
        offers = OfferIndex(DIM)
        for p in profiles:
            offers.put(company_document(p))
        askers = [p for p in profiles[: args.queries * 2] if p.needs][: args.queries]
        top_times, dot_times, search_times, country_times = [], [], [], []
        for me in askers:
            started = time.perf_counter()
            offers.search(me.need_vectors[0], (0.0, 0.05), 20)
            search_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            offers.search(me.need_vectors[0], (0.0, 0.05), 20, country="RS")
            country_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            index.top(me, 10)
            top_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            _ = me.need_vectors @ index.offers_t
            dot_times.append(time.perf_counter() - started)
        top50, top99 = percentiles(top_times)
        search50, search99 = percentiles(search_times)
        country50, country99 = percentiles(country_times)
        dot50, dot99 = percentiles(dot_times)
        table.add_row(
            f"{n:,}",
            f"{top50:.1f} / {top99:.1f}",
            f"{search50:.1f} / {search99:.1f}",
            f"{country50:.1f} / {country99:.1f}",
            f"{dot50:.1f} / {dot99:.1f}",
            f"{top99 / dot99:.1f}×, {search99 / dot99:.1f}×",
            f"{(index.nbytes() + offers.nbytes()) / 2**20:.0f} MiB",
        )
    console.print(table)
    model = E5Embedder()
    texts = [f"Сензори за качество на въздуха, модел {i}: станции за частици и NO2" for i in range(200)]
    started = time.perf_counter()
    model.embed(texts, "passage")
    rate = len(texts) / (time.perf_counter() - started)
    console.print(f"embedding throughput: {rate:.0f} texts/s (multilingual-e5-small, 4-bit, on this machine)")


if __name__ == "__main__":
    main()
