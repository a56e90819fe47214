"""The first matching rule: an offer fits a need when they share a category, or
enough of their words. Pure functions, no I/O.

Categories come from the partnership's controlled vocabulary, so they match
across languages; words only match within one language (issue 4 replaces this
with multilingual semantic similarity).
"""

import re
import unicodedata
from dataclasses import dataclass

from c2f_shared.events import MatchReason, Need, Offer

MIN_SHARED_WORDS = 2
CROSS_BORDER_BONUS = 0.5
_STEM = 6
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOPWORDS = frozenset(
    (
        "with",
        "from",
        "that",
        "this",
        "they",
        "their",
        "them",
        "have",
        "will",
        "your",
        "which",
        "also",
        "into",
        "para",
        "como",
        "sobre",
        "desde",
        "entre",
        "della",
        "delle",
        "degli",
        "dalla",
        "nella",
        "sono",
        "anche",
        "come",
        "questo",
        "които",
        "като",
        "също",
        "между",
    )
)


@dataclass(frozen=True)
class Profile:
    """What matching knows of a participant: their company's offers and needs."""

    participant_id: str
    company_id: str
    company_name: str
    country: str
    offers: tuple[Offer, ...]
    needs: tuple[Need, ...]


def words(text: str) -> frozenset[str]:
    """Significant word stems: accents dropped, lower case, first letters only."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return frozenset(w[:_STEM] for w in _WORD.findall(plain) if len(w) >= 4 and w not in _STOPWORDS)


def fit_basis(offer: Offer, need: Need) -> str | None:
    """Why `offer` fits `need`, or None when it does not."""
    if need.category is not None and offer.category == need.category:
        return f"category {offer.category}"
    shared = words(f"{offer.title} {offer.description}") & words(f"{need.title} {need.description}")
    if len(shared) >= MIN_SHARED_WORDS:
        return "shared words " + ", ".join(sorted(shared))
    return None


def reasons_one_way(provider: Profile, seeker: Profile) -> list[MatchReason]:
    return [
        MatchReason(
            offered_by=provider.participant_id,
            offer_title=offer.title,
            needed_by=seeker.participant_id,
            need_title=need.title,
            basis=basis,
        )
        for offer in provider.offers
        for need in seeker.needs
        if (basis := fit_basis(offer, need)) is not None
    ]


def match(a: Profile, b: Profile) -> tuple[float, list[MatchReason]] | None:
    """Score and reasons for a meeting of `a` and `b`, or None when they should not meet.

    Each fitting offer/need pair counts 1; a pair fitting both ways counts for
    both sides; meeting across a border adds CROSS_BORDER_BONUS. Two
    participants of the same company never match.
    """
    if a.company_id == b.company_id:
        return None
    reasons = reasons_one_way(a, b) + reasons_one_way(b, a)
    if not reasons:
        return None
    score = float(len(reasons)) + (CROSS_BORDER_BONUS if a.country != b.country else 0.0)
    return score, reasons
