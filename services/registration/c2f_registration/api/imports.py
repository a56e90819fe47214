"""Bulk import of a cluster's member list from CSV or XLSX, with a dry run.

Send the file as the request body (`Content-Type: text/csv`, or the XLSX type).
A dry run stores nothing and reports every problem by row and column, and what
would be created, updated or left unchanged. A real import of a file with
problems is refused (422) unless `skip_invalid=true`; otherwise it runs in the
background and `GET .../imports/{id}` reports its progress. Re-importing the
same file changes nothing; a changed row updates its company.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from c2f_registration import auth, importer, store
from c2f_registration.api.common import NOT_YOUR_CLUSTER, OWN_CLUSTER, not_found
from c2f_registration.api.companies import natural_key, save_company
from c2f_registration.schemas import CompanyFields
from c2f_shared.service import Runtime
from c2f_shared.service.http import CorrelationId, RuntimeDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["import"])

IMPORTS = "imports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_FILE_BYTES = 20 * 1024 * 1024
_running: set[asyncio.Task[None]] = set()  # keeps background imports alive until they finish


class ProblemOut(BaseModel):
    row: int
    column: str | None
    problem: str


class ImportReport(BaseModel):
    id: str | None = None
    cluster_id: str
    dry_run: bool
    status: Literal["checked", "running", "done", "failed", "interrupted"]
    total: int
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[ProblemOut] = []
    error: str | None = None


@router.get("/imports/template.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def template_csv() -> Response:
    """The import template as CSV (UTF-8), with one example row."""
    return Response(
        importer.template_csv(), media_type="text/csv", headers=_attachment("members-template.csv")
    )


@router.get("/imports/template.xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
async def template_xlsx() -> Response:
    """The import template as an Excel workbook, with one example row."""
    return Response(importer.template_xlsx(), media_type=XLSX, headers=_attachment("members-template.xlsx"))


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.post(
    "/clusters/{cluster_id}/imports",
    response_model=ImportReport,
    status_code=202,
    responses={
        **OWN_CLUSTER,
        200: {"description": "Dry run: the report; nothing was stored"},
        202: {"description": "Import started; follow it at GET .../imports/{id}"},
        422: {"description": "Rows with problems (by row and column); nothing was imported"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_members(
    cluster_id: str,
    request: Request,
    runtime: RuntimeDep,
    correlation: CorrelationId,
    caller: auth.Caller,
    dry_run: Annotated[bool, Query(description="Check and report; store nothing")] = False,
    skip_invalid: Annotated[
        bool, Query(description="Import the valid rows even if others have problems")
    ] = False,
) -> Any:
    """Import a member list (CSV or XLSX) for the cluster: see docs/import-template.md."""
    auth.require_may_act_for(caller, cluster_id)
    if await store.local_cluster(runtime, cluster_id) is None:
        raise not_found("cluster served here", cluster_id)
    content = await request.body()
    is_xlsx = request.headers.get("content-type", "").startswith(XLSX) or content[:2] == b"PK"
    try:
        sheet = importer.read(content, "upload.xlsx" if is_xlsx else "upload.csv")
    except importer.UnreadableFile as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"cannot read the file: {error}") from None
    report = ImportReport(
        cluster_id=cluster_id,
        dry_run=dry_run,
        status="checked",
        total=sheet.total,
        rejected=len({p.row for p in sheet.problems if p.row > 1}),
        problems=[ProblemOut(row=p.row, column=p.column, problem=p.message) for p in sheet.problems],
    )
    if dry_run:
        for _, fields in sheet.rows:
            outcome = await _plan(runtime, cluster_id, fields)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return JSONResponse(report.model_dump(mode="json"), status_code=200)
    header_problems = any(p.row == 1 for p in sheet.problems)
    if sheet.problems and (not skip_invalid or header_problems):
        detail = [
            {"loc": ["file", f"row {p.row}", p.column or ""], "msg": p.message, "type": "import"}
            for p in sheet.problems
        ]
        return JSONResponse({"detail": detail, "report": report.model_dump(mode="json")}, status_code=422)
    report.id = str(uuid.uuid4())
    report.status = "running"
    await runtime.db[IMPORTS].insert_one(
        {"_id": report.id, **report.model_dump(mode="json", exclude={"id"}), "started_at": datetime.now(UTC)}
    )
    task = asyncio.create_task(_run(runtime, report, sheet.rows, correlation), name=f"import-{report.id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return report


async def _plan(runtime: Runtime, cluster_id: str, fields: dict[str, Any]) -> str:
    """What importing this row would do."""
    doc = await runtime.db[store.COMPANIES].find_one(
        {"natural_key": natural_key(cluster_id, fields["legal_name"])}
    )
    if doc is None:
        return "created"
    data = {**CompanyFields.model_validate(fields).model_dump(mode="json"), "cluster_id": cluster_id}
    return "unchanged" if store.fingerprint(data) == doc["fingerprint"] else "updated"


async def _run(
    runtime: Runtime, report: ImportReport, rows: list[tuple[int, dict[str, Any]]], correlation: str
) -> None:
    imports = runtime.db[IMPORTS]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    try:
        for processed, (_, fields) in enumerate(rows, start=1):
            outcome = await save_company(
                runtime, report.cluster_id, CompanyFields.model_validate(fields), correlation
            )
            counts[outcome] += 1
            if processed % 10 == 0 or processed == len(rows):
                await imports.update_one({"_id": report.id}, {"$set": {"processed": processed, **counts}})
        await imports.update_one(
            {"_id": report.id},
            {"$set": {"status": "done", "finished_at": datetime.now(UTC), "processed": len(rows), **counts}},
        )
    except asyncio.CancelledError:
        await asyncio.shield(
            imports.update_one({"_id": report.id}, {"$set": {"status": "interrupted", **counts}})
        )
        raise
    except Exception as error:
        log.exception("import %s failed", report.id)
        await imports.update_one(
            {"_id": report.id}, {"$set": {"status": "failed", "error": str(error), **counts}}
        )


@router.get(
    "/clusters/{cluster_id}/imports/{import_id}",
    response_model=ImportReport,
    responses={**NOT_YOUR_CLUSTER, 404: {"description": "No such import of this cluster"}},
)
async def import_status(
    cluster_id: str, import_id: str, runtime: RuntimeDep, caller: auth.Caller
) -> ImportReport:
    """How far an import has got, and how it ended."""
    auth.require_may_act_for(caller, cluster_id)
    doc = await runtime.db[IMPORTS].find_one({"_id": import_id, "cluster_id": cluster_id})
    if doc is None:
        raise not_found("import", import_id)
    return ImportReport(**{k: v for k, v in doc.items() if k in ImportReport.model_fields}, id=doc["_id"])


async def interrupt_unfinished(runtime: Runtime) -> None:
    """At start-up: an import still 'running' was cut short by a restart (re-run it: it is idempotent)."""
    await runtime.db[IMPORTS].update_many({"status": "running"}, {"$set": {"status": "interrupted"}})
