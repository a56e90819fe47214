"""Reporting's HTTP API: the partnership in numbers, totals and broken down, as JSON, CSV
and XLSX; and the rebuild of the projections from the topics."""

import asyncio
import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from pydantic import BaseModel, Field

from c2f_reporting import breakdown, brochure, dashboard, insights
from c2f_reporting.store import (
    AGREEMENTS,
    CLUSTERS,
    COMPANIES,
    DEAD_LETTERS_SEEN,
    EVENTS,
    MATCH_SUGGESTIONS,
    MEETINGS,
    NOTIFICATIONS,
    OUTCOMES,
    PARTICIPANTS,
)
from c2f_shared.service.access import OPERATOR_ONLY, Token, require_operator
from c2f_shared.service.http import RuntimeDep
from c2f_shared.vocabulary import Sector

router = APIRouter(tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The report as a file"}
}


class PartnershipReport(BaseModel):
    clusters: int
    agreements: int
    companies: int
    events: int
    participants: int
    match_suggestions: int
    meeting_requests: int = Field(description="Requests made (whatever became of them)")
    meetings_accepted: int
    meetings_scheduled: int
    meetings_held: int = Field(description="Meetings at least one side reported as held")
    notifications_sent: int
    dead_letters: int = Field(description="Messages the services set aside (see `c2f dead-letters list`).")


@router.get("/reports/partnership.{fmt}", response_class=Response, responses=FILE_RESPONSES)
async def partnership_file(fmt: Literal["csv", "xlsx"], runtime: RuntimeDep) -> Response:
    """The totals as a file: one row."""
    totals = (await partnership(runtime)).model_dump()
    return table_file("partnership", fmt, {"totals": (list(totals), [totals])})


@router.get("/reports/partnership", response_model=PartnershipReport)
async def partnership(runtime: RuntimeDep) -> PartnershipReport:
    """Totals for the whole partnership, as of the last event reporting consumed."""
    db = runtime.db
    return PartnershipReport(
        clusters=await db[CLUSTERS].count_documents({}),
        agreements=await db[AGREEMENTS].count_documents({}),
        companies=await db[COMPANIES].count_documents({}),
        events=await db[EVENTS].count_documents({}),
        participants=await db[PARTICIPANTS].count_documents({"status": "registered"}),
        match_suggestions=await db[MATCH_SUGGESTIONS].count_documents({}),
        meeting_requests=await db[MEETINGS].count_documents({}),
        meetings_accepted=await db[MEETINGS].count_documents({"status": "accepted"}),
        meetings_scheduled=await db[MEETINGS].count_documents({"status": "accepted", "scheduled": True}),
        meetings_held=len(await db[OUTCOMES].distinct("meeting_id", {"held": True})),
        notifications_sent=await db[NOTIFICATIONS].count_documents({}),
        dead_letters=await db[DEAD_LETTERS_SEEN].count_documents({}),
    )


Dimension = Annotated[
    Literal["cluster", "country", "sector", "event", "month"],
    Path(description="Group by: a meeting counts for every group one of its parties belongs to"),
]


class BreakdownRow(BaseModel):
    group: str
    label: str
    companies: int
    participants: int
    meeting_requests: int
    meetings_accepted: int
    meetings_scheduled: int
    meetings_held: int
    no_shows: int = Field(description="Meetings with outcomes, none of them 'held'")
    further_contact: int
    offers_sent: int
    agreements_signed: int
    cross_border_share: float | None = Field(
        description="Accepted meetings between companies of two countries"
    )
    cross_sector_share: float | None = Field(
        description="Accepted meetings between companies sharing no sector"
    )


@router.get(
    "/reports/partnership/by/{by}.{fmt}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The same rows as a file"}},
)
async def partnership_by_file(by: Dimension, fmt: Literal["csv", "xlsx"], runtime: RuntimeDep) -> Response:
    """The breakdown as CSV (UTF-8 with BOM, for spreadsheet programs) or XLSX. (Declared before
    the JSON route, so that `event.csv` is not read as a dimension.)"""
    rows = await breakdown.rows(runtime.db, by)
    return table_file(f"partnership-by-{by}", fmt, {f"by {by}": (list(breakdown.COLUMNS), rows)})


def table_file(name: str, fmt: str, sheets: dict[str, tuple[list[str], list[dict[str, Any]]]]) -> Response:
    """Tables as a file: CSV (the first table; UTF-8 with BOM, for spreadsheet programs) or
    XLSX (one sheet per table). Lists and mappings in a cell are written out as text."""

    def cell(value: Any) -> Any:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {v}" for k, v in value.items())
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return value

    def xlsx_cell(value: Any) -> Any:
        """A worksheet cannot hold control characters (a name may): they are left out."""
        value = cell(value)
        return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value

    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        columns, rows = next(iter(sheets.values()))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([cell(row.get(c)) for c in columns] for row in rows)
        return Response(
            ("\ufeff" + out.getvalue()).encode(), media_type="text/csv; charset=utf-8", headers=headers
        )
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for title, (columns, rows) in sheets.items():
        sheet = book.create_sheet(title[:31])
        sheet.append([xlsx_cell(c) for c in columns])
        for row in rows:
            sheet.append([xlsx_cell(row.get(c)) for c in columns])
        sheet.freeze_panes = "B2"
    out_bytes = io.BytesIO()
    book.save(out_bytes)
    return Response(out_bytes.getvalue(), media_type=XLSX, headers=headers)


@router.get("/reports/partnership/by/{by}", response_model=list[BreakdownRow])
async def partnership_by(by: Dimension, runtime: RuntimeDep) -> list[BreakdownRow]:
    """The partnership's numbers per cluster, country, sector, event or month."""
    return [BreakdownRow(**row) for row in await breakdown.rows(runtime.db, by)]


Market = Annotated[str | None, Query(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", description="e.g. MX, US-CA")]


def _filters(market: str | None, sector: Sector | None, cluster: str | None) -> brochure.Filters:
    return brochure.Filters(market=market, sector=sector.value if sector else None, cluster=cluster)


@router.get("/brochure.html", response_class=HTMLResponse, tags=["brochure"])
async def brochure_html(
    runtime: RuntimeDep, market: Market = None, sector: Sector | None = None, cluster: str | None = None
) -> HTMLResponse:
    """The Smart City catalogue as a web page: members' offers grouped by sector, contacts only
    with consent; filter by target market, sector and cluster ("Mexico, mobility")."""
    return HTMLResponse(await brochure.html(runtime.db, _filters(market, sector, cluster)))


PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """An error answer in the RFC 9457 form (`detail` as in the service's other answers)."""

    type: str
    title: str
    status: int
    detail: str


@router.get(
    "/brochure.pdf",
    response_class=Response,
    tags=["brochure"],
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The typeset catalogue"},
        503: {
            "content": {PROBLEM: {"schema": Problem.model_json_schema()}},
            "description": "This server cannot typeset PDFs (no Pango); the body names the packages",
        },
    },
)
async def brochure_pdf(
    runtime: RuntimeDep, market: Market = None, sector: Sector | None = None, cluster: str | None = None
) -> Response:
    """The same catalogue typeset for print: cover, contents with page numbers, page numbers."""
    document = await brochure.html(runtime.db, _filters(market, sector, cluster))
    try:
        content = await asyncio.to_thread(brochure.pdf, document)
    except brochure.PdfUnavailable as error:
        problem = Problem(
            type="https://c2future.example/problems/pdf-unavailable",
            title="PDF brochure unavailable",
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=str(error),
        )
        return JSONResponse(problem.model_dump(), status_code=problem.status, media_type=PROBLEM)
    name = "-".join(["smart-city-catalogue", *(x.lower() for x in (market, sector) if x)]) + ".pdf"
    return Response(
        content, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'}
    )


@router.get(
    "/reports/events/{event_id}.{fmt}",
    response_class=Response,
    responses={**FILE_RESPONSES, 404: {"description": "No such event"}},
)
async def event_report_file(event_id: str, fmt: Literal["csv", "xlsx"], runtime: RuntimeDep) -> Response:
    """The event report as a file: its slots (CSV), or its figures, slots and who met whom
    (XLSX, one sheet each)."""
    report = await insights.event_report(runtime.db, event_id)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}")
    figures = [k for k, v in report.items() if not isinstance(v, list | dict)]
    countries = [{"country": k, **v} for k, v in report["met_by_country"].items()]
    return table_file(
        f"event-{event_id}",
        fmt,
        {
            "slots": (["slot_id", "meetings", "tables"], report["slots"]),
            "figures": (figures, [report]),
            "registrations": (["date", "registered", "total"], report["registrations_over_time"]),
            "met by country": (["country", *report["met_by_country"]], countries),
        },
    )


@router.get("/reports/internationalisation.{fmt}", response_class=Response, responses=FILE_RESPONSES)
async def internationalisation_file(
    fmt: Literal["csv", "xlsx"], runtime: RuntimeDep, market: Market = None
) -> Response:
    """The internationalisation inputs as a file, one row per target market."""
    rows = await insights.internationalisation(runtime.db, market)
    columns = list(rows[0]) if rows else ["market"]
    return table_file("internationalisation", fmt, {"markets": (columns, rows)})


@router.get("/reports/events/{event_id}", responses={404: {"description": "No such event"}})
async def event_report(event_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    """One event in detail: registrations over time, who met whom (countries, clusters), each
    slot's meetings against its tables, requests left unanswered, and the schedule's quality
    (share of accepted requests scheduled)."""
    report = await insights.event_report(runtime.db, event_id)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}")
    return report


@router.get("/reports/internationalisation")
async def internationalisation(runtime: RuntimeDep, market: Market = None) -> list[dict[str, Any]]:
    """Inputs of the internationalisation strategy, per target market: interest by sector and
    cluster, the obstacles members name (overall and per sector), members already connected
    there, and the suggestions, meetings and agreements that reach it."""
    return await insights.internationalisation(runtime.db, market)


@router.get("/dashboard", response_class=HTMLResponse, tags=["dashboard"])
async def show_dashboard(
    runtime: RuntimeDep, event: str | None = None, cluster: str | None = None
) -> HTMLResponse:
    """The dashboard page: headline numbers and charts (drawn as SVG on the server, nothing
    loaded from elsewhere), filtered by event and cluster, with links to exports and brochures."""
    return HTMLResponse(await dashboard.page(runtime.db, event or None, cluster or None))


@router.post("/admin/rebuild", tags=["operations"], responses=OPERATOR_ONLY)
async def rebuild(request: Request, runtime: RuntimeDep, token: Token) -> dict[str, Any]:
    """Empty every projection and replay every topic into it (operator); the reports come out
    identical. Events the broker no longer keeps cannot come back."""
    require_operator(request, token, "rebuild the projections")
    replayed: int = await request.app.state.rebuild()
    return {"replayed": replayed}
