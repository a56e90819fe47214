"""Recommendations for a participant, pairs for organisers, partner search, and the
suggestions already published."""

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from c2f_matching.api.access import Token, any_participant_or_operator, may_see, require_operator
from c2f_matching.handlers import event_profiles
from c2f_matching.matcher import Matcher
from c2f_matching.scoring import MIN_PAIR_SCORE, PairScore, Profile, calibrate, pair, squash, top_pairs
from c2f_matching.store import COMPANIES, MEETINGS, SUGGESTIONS
from c2f_shared.service.access import OPERATOR_ONLY, PARTICIPANT_OR_OPERATOR
from c2f_shared.service.http import RuntimeDep
from c2f_shared.vocabulary import COUNTRY_NAMES

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]


COUNTRIES = {**COUNTRY_NAMES, "US": "the United States"}  # "connects Spain and the United States"


def _names(codes: list[str]) -> str:
    return ", ".join(COUNTRIES.get(c, c) for c in codes)


def explain(scored: PairScore, me: str) -> list[str]:
    """The reasons, said to participant `me`."""
    lines = []
    for reason in scored.reasons:
        if reason.needed_by == me:
            lines.append(f"offers “{reason.offer_title}” — matches your need “{reason.need_title}”")
        else:
            lines.append(f"needs “{reason.need_title}” — which your offer “{reason.offer_title}” meets")
    for signal in scored.signals:
        kind = signal["kind"]
        if kind == "shared_markets":
            lines.append(f"both target {_names(signal['markets'])}")
        elif kind == "market_access" and signal["for"] == me:
            line = f"already works in {_names(signal['markets'])}, which you target"
            if signal.get("obstacles"):
                line += (
                    " — and can help with "
                    + ", ".join(o.replace("_", " ") for o in signal["obstacles"])
                    + " there"
                )
            lines.append(line)
        elif kind == "market_access":
            lines.append(f"targets {_names(signal['markets'])}, where you already work")
        elif kind == "connects_countries":
            lines.append(f"connects {' and '.join(COUNTRIES.get(c, c) for c in signal['countries'])}")
        elif kind == "complementary_sectors":
            lines.append(
                "complementary sectors: " + ", ".join(s.replace("_", " ") for s in signal["sectors"])
            )
    return lines


class Recommendation(BaseModel):
    participant_id: str
    company_id: str
    company_name: str
    country: str
    score: float
    score_parts: dict[str, float] = Field(description="gain_a is what you gain, gain_b what they gain")
    reasons: list[str]


def _recommendation(me: Profile, other: Profile, scored: PairScore) -> Recommendation:
    return Recommendation(
        participant_id=other.participant_id,
        company_id=other.company_id,
        company_name=other.company_name,
        country=other.country,
        score=scored.score,
        score_parts=scored.parts,
        reasons=explain(scored, me.participant_id),
    )


@router.get(
    "/participants/{participant_id}/recommendations",
    response_model=list[Recommendation],
    tags=["recommendations"],
    responses=PARTICIPANT_OR_OPERATOR,
)
async def recommendations(
    participant_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    k: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[Recommendation]:
    """The participant's best partners at its event, best first, with reasons in terms of its
    own profile (its own access token, or the operator's); those it already has a meeting
    request with (either way, or declined) are left out."""
    participant = await may_see(request, runtime, token, participant_id)
    matcher: Matcher = request.app.state.matcher
    profiles = await event_profiles(runtime.db, matcher, participant["event_id"])
    me = next((p for p in profiles if p.participant_id == participant_id), None)
    if me is None:
        return []
    # Whom it already asked, was asked by, or was turned down by is not news.
    asked = {
        p
        async for m in runtime.db[MEETINGS].find(
            {"parties": participant_id, "status": {"$ne": "cancelled"}}, {"parties": 1}
        )
        for p in m["parties"]
    }
    others = [p for p in profiles if p.participant_id != participant_id and p.participant_id not in asked]
    return [_recommendation(me, other, scored) for other, scored in top_pairs(me, others, k)]


class Pair(BaseModel):
    a: Recommendation
    b: Recommendation
    score: float


@router.get(
    "/events/{event_id}/pairs", response_model=list[Pair], tags=["recommendations"], responses=OPERATOR_ONLY
)
async def event_pairs(
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    min_score: Annotated[float, Query(ge=0, le=2)] = MIN_PAIR_SCORE,
    limit: Limit = 200,
) -> list[Pair]:
    """For organisers (operator token): every pair at the event scoring at least `min_score`."""
    require_operator(request, token, "see every pair")
    matcher: Matcher = request.app.state.matcher
    profiles = await event_profiles(runtime.db, matcher, event_id)
    pairs = []
    for i, a in enumerate(profiles):
        for b in profiles[i + 1 :]:
            scored = pair(a, b)
            if scored is not None and scored.score >= min_score:
                pairs.append(
                    Pair(a=_recommendation(b, a, scored), b=_recommendation(a, b, scored), score=scored.score)
                )
    pairs.sort(key=lambda p: p.score, reverse=True)
    return pairs[:limit]


def _out(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "suggestion_id": doc["_id"],
        "event_id": doc["event_id"],
        "parties": doc["parties"],
        "score": doc["score"],
        "reasons": doc["reasons"],
        "signals": doc.get("signals", []),
    }


@router.get("/events/{event_id}/suggestions", tags=["suggestions"], responses=OPERATOR_ONLY)
async def event_suggestions(
    event_id: str, request: Request, runtime: RuntimeDep, token: Token, limit: Limit = 100
) -> list[dict[str, Any]]:
    """Suggestions published for an event (ids, company names and reasons), best first
    (operator: who should meet whom is the organisers' view, not the public's)."""
    require_operator(request, token, "see an event's suggestions")
    cursor = runtime.db[SUGGESTIONS].find({"event_id": event_id}).sort("score", -1).limit(limit)
    return [_out(d) async for d in cursor]


@router.get(
    "/participants/{participant_id}/suggestions", tags=["suggestions"], responses=PARTICIPANT_OR_OPERATOR
)
async def participant_suggestions(
    participant_id: str, request: Request, runtime: RuntimeDep, token: Token, limit: Limit = 20
) -> list[dict[str, Any]]:
    """Suggestions published for a participant, best first (its own token, or the operator's)."""
    await may_see(request, runtime, token, participant_id)
    cursor = runtime.db[SUGGESTIONS].find({"participant_ids": participant_id}).sort("score", -1).limit(limit)
    return [_out(d) async for d in cursor]


class SearchHit(BaseModel):
    company_id: str
    company_name: str
    country: str
    sectors: list[str]
    target_markets: list[str]
    score: float = Field(description="How well its best offer fits the search, 0..1")
    offer_title: str
    offer_description: str


@router.get(
    "/search",
    response_model=list[SearchHit],
    tags=["search"],
    responses={403: {"description": "The token is neither a participant's nor the operator's"}},
)
async def search(
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    q: Annotated[str, Query(min_length=2, max_length=500, description="What you look for, in any language")],
    sector: str | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    target_market: Annotated[str | None, Query(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SearchHit]:
    """Partner search across the partnership's member profiles: the offers whose meaning is
    closest to `q`, in any of the six languages, with optional filters."""
    await any_participant_or_operator(request, runtime, token)
    query: dict[str, Any] = {"offers.0": {"$exists": True}}
    if sector:
        query["sectors"] = sector
    if country:
        query["country"] = country
    if target_market:
        query["target_markets"] = target_market
    companies = await runtime.db[COMPANIES].find(query).to_list(None)
    if not companies:
        return []
    matcher: Matcher = request.app.state.matcher
    needle = await matcher.embedder.embed([q], "query")
    centre, spread = calibrate(needle, await matcher.background())[0]
    hits = []
    for company in companies:
        profile = matcher.profile(company["_id"], company)
        fits = squash((profile.offer_vectors @ needle[0] - centre) / spread)
        best = int(np.argmax(fits))
        offer = profile.offers[best]
        hits.append(
            SearchHit(
                company_id=company["_id"],
                company_name=company["legal_name"],
                country=company["country"],
                sectors=company.get("sectors", []),
                target_markets=company.get("target_markets", []),
                score=round(float(fits[best]), 4),
                offer_title=offer.title,
                offer_description=offer.description,
            )
        )
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits[:limit]


@router.post("/admin/rebuild", tags=["operations"], responses=OPERATOR_ONLY)
async def rebuild(request: Request, runtime: RuntimeDep, token: Token) -> dict[str, int]:
    """Rebuild matching's read model (profiles, events, participants) from the topics
    (operator). Suggestions already made stay, so nothing is announced twice."""
    require_operator(request, token, "rebuild")
    replayed: int = await request.app.state.rebuild()
    return {"replayed": replayed, "companies": await runtime.db[COMPANIES].count_documents({})}
