"""Recommendations for a participant, pairs for organisers, partner search, and the
suggestions already published."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from c2f_matching.api.access import OPERATOR, Token, may_see, participant_of, require_operator
from c2f_matching.clusters import explain as explain_clusters
from c2f_matching.clusters import rank as rank_clusters
from c2f_matching.matcher import Matcher
from c2f_matching.profiles import clusters, event_profiles
from c2f_matching.scoring import MIN_PAIR_SCORE, PairScore, Profile, calibrate, pair, top_pairs
from c2f_matching.search import OfferIndex
from c2f_matching.store import COMPANIES, MEETINGS, PARTICIPANTS, SUGGESTIONS
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
    company_id: str | None = Field(description="None for a cluster's delegation (C2C events)")
    company_name: str | None = Field(description="None for a cluster's delegation (C2C events)")
    cluster_id: str
    cluster_name: str | None = Field(default=None, description="Set for a cluster's delegation")
    country: str
    score: float
    score_parts: dict[str, float] = Field(
        description="Companies: gain_a is what you gain, gain_b what they gain; first is the side "
        "that ranks (your needs, when you have any) and other_side the bonus for the other. "
        "Delegations: served (your members' needs met by theirs), serves (the other way), access "
        "(your members reaching markets they open), ties (members already working together)"
    )
    reasons: list[str]


def _recommendation(me: Profile, other: Profile, scored: PairScore) -> Recommendation:
    return Recommendation(
        participant_id=other.participant_id,
        company_id=other.company_id,
        company_name=other.company_name,
        cluster_id=other.cluster_id,
        country=other.country,
        score=scored.score,
        score_parts=scored.parts,
        reasons=explain(scored, me.participant_id),
    )


async def _delegation_recommendations(
    runtime: Any, matcher: Matcher, me: dict[str, Any], k: int, asked: set[str]
) -> list[Recommendation]:
    """A delegation's best partner clusters among the other delegations at its C2C event."""
    others = [
        d
        async for d in runtime.db[PARTICIPANTS].find(
            {"event_id": me["event_id"], "company_id": None, "_id": {"$ne": me["_id"]}}
        )
        if d["_id"] not in asked and d.get("cluster_id") != me.get("cluster_id")
    ]
    delegation_of = {d["cluster_id"]: d["_id"] for d in others}
    known = {c.cluster_id: c for c in await clusters(runtime.db, matcher, [me["cluster_id"], *delegation_of])}
    mine = known.get(me["cluster_id"])
    if mine is None:
        return []
    candidates = [known[c] for c in delegation_of if c in known]
    return [
        Recommendation(
            participant_id=delegation_of[other.cluster_id],
            company_id=None,
            company_name=None,
            cluster_id=other.cluster_id,
            cluster_name=other.name,
            country=other.country,
            score=found.score,
            score_parts=found.parts,
            reasons=explain_clusters(found, COUNTRIES),
        )
        for other, found in rank_clusters(mine, candidates, k)
    ]


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
    request with (either way, or declined) are left out.

    A company with needs sees first who meets them (what the other side gains is a bonus);
    one without needs sees who needs what it offers. A cluster's delegation at a C2C event
    sees the delegations whose clusters complement its own most: their members' offers and
    needs against its members', the markets they open, and ties its members already have."""
    participant = await may_see(request, runtime, token, participant_id)
    matcher: Matcher = request.app.state.matcher
    # Whom it already asked, was asked by, or was turned down by is not news.
    asked = {
        p
        async for m in runtime.db[MEETINGS].find(
            {"parties": participant_id, "status": {"$ne": "cancelled"}}, {"parties": 1}
        )
        for p in m["parties"]
    }
    if participant.get("company_id") is None:
        return await _delegation_recommendations(runtime, matcher, participant, k, asked)
    profiles = await event_profiles(runtime.db, matcher, participant["event_id"])
    me = next((p for p in profiles if p.participant_id == participant_id), None)
    if me is None:
        return []
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
            if scored is None or scored.mutual < min_score:
                continue
            # each side's view: its own gain first in its score parts
            seen_by_b = pair(b, a)
            assert seen_by_b is not None
            pairs.append(
                Pair(a=_recommendation(b, a, seen_by_b), b=_recommendation(a, b, scored), score=scored.mutual)
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
    """Partner search across the partnership's member profiles: the companies whose offers are
    closest in meaning to `q`, in any of the six languages (each language's own bias removed),
    with optional filters. A participant's own company is left out."""
    caller = await participant_of(request, runtime, token)
    mine: list[str] = []
    if caller != OPERATOR:  # a participant looks for others, not for its own company
        participant = await runtime.db[PARTICIPANTS].find_one({"_id": caller}, {"company_id": 1})
        mine = [participant["company_id"]] if participant and participant.get("company_id") else []
    offers: OfferIndex = request.app.state.offers
    await offers.sync(runtime.db)
    matcher: Matcher = request.app.state.matcher
    needle = await matcher.embed([q], "query")
    centre, spread = calibrate(needle, await matcher.background())[0]
    found = offers.search(
        needle[0],
        (float(centre), float(spread)),
        limit,
        exclude=mine,
        sector=sector,
        country=country,
        target_market=target_market,
    )
    return [
        SearchHit(
            company_id=hit.entry.company_id,
            company_name=hit.entry.company_name,
            country=hit.entry.country,
            sectors=list(hit.entry.sectors),
            target_markets=list(hit.entry.target_markets),
            score=hit.score,
            offer_title=hit.entry.offers[hit.offer][0],
            offer_description=hit.entry.offers[hit.offer][1],
        )
        for hit in found
    ]


class ClusterCandidate(BaseModel):
    cluster_id: str
    name: str
    country: str
    members: int = Field(description="Member companies matching knows")
    score: float
    score_parts: dict[str, float] = Field(
        description="served: your members' needs met by theirs; serves: the other way; access: "
        "your members reaching markets they open; ties: members already working together"
    )
    reasons: list[str]


@router.get(
    "/clusters/{cluster_id}/partner-candidates",
    response_model=list[ClusterCandidate],
    tags=["recommendations"],
    responses={**OPERATOR_ONLY, 404: {"description": "No such cluster"}},
)
async def partner_candidates(
    cluster_id: str,
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[ClusterCandidate]:
    """For the operator: the clusters in the registry that complement this one most, best
    first, and why: what their members offer that this cluster's members need and the other
    way round, the markets they open, and ties between members. How the partnership finds
    the next clusters to sign with."""
    require_operator(request, token, "compare clusters")
    matcher: Matcher = request.app.state.matcher
    everyone = {c.cluster_id: c for c in await clusters(runtime.db, matcher)}
    mine = everyone.get(cluster_id)
    if mine is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no cluster {cluster_id!r}")
    return [
        ClusterCandidate(
            cluster_id=other.cluster_id,
            name=other.name,
            country=other.country,
            members=len(other.members),
            score=found.score,
            score_parts=found.parts,
            reasons=explain_clusters(found, COUNTRIES),
        )
        for other, found in rank_clusters(mine, list(everyone.values()), limit)
    ]


@router.post("/admin/rebuild", tags=["operations"], responses=OPERATOR_ONLY)
async def rebuild(request: Request, runtime: RuntimeDep, token: Token) -> dict[str, int]:
    """Rebuild matching's read model (profiles, events, participants) from the topics
    (operator). Suggestions already made stay, so nothing is announced twice."""
    require_operator(request, token, "rebuild")
    replayed: int = await request.app.state.rebuild()
    return {"replayed": replayed, "companies": await runtime.db[COMPANIES].count_documents({})}
