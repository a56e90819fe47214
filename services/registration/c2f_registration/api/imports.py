"""Bulk import of a cluster's member list from CSV or XLSX, with a dry run.

Send the file as the request body (`Content-Type: text/csv`, or the XLSX type).
A dry run stores nothing and reports every problem by row and column, and what
would be created, updated or left unchanged. A real import of a file with
problems is refused (422) unless `skip_invalid=true`; otherwise it runs in the
background and `GET .../imports/{id}` reports its progress. Re-importing the
same file changes nothing; a changed row updates its company.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from c2f_registration import importer, imports
from c2f_registration.api import auth
from c2f_registration.api.common import NOT_YOUR_CLUSTER, OWN_CLUSTER
from c2f_registration.schemas import ImportReport
from c2f_shared.service.http import CorrelationId, RuntimeDep

router = APIRouter(tags=["import"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_FILE_BYTES = 20 * 1024 * 1024


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
    content = await request.body()
    is_xlsx = request.headers.get("content-type", "").startswith(XLSX) or content[:2] == b"PK"
    outcome = await imports.check_or_start(
        runtime,
        caller,
        cluster_id,
        content,
        is_xlsx,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        correlation=correlation,
    )
    if isinstance(outcome, imports.Refusal):
        detail = [
            {"loc": ["file", f"row {p.row}", p.column or ""], "msg": p.message, "type": "import"}
            for p in outcome.problems
        ]
        return JSONResponse(
            {"detail": detail, "report": outcome.report.model_dump(mode="json")}, status_code=422
        )
    if outcome.dry_run:
        return JSONResponse(outcome.model_dump(mode="json"), status_code=200)
    return outcome


@router.get(
    "/clusters/{cluster_id}/imports/{import_id}",
    response_model=ImportReport,
    responses={**NOT_YOUR_CLUSTER, 404: {"description": "No such import of this cluster"}},
)
async def import_status(
    cluster_id: str, import_id: str, runtime: RuntimeDep, caller: auth.Caller
) -> ImportReport:
    """How far an import has got, and how it ended."""
    return await imports.status(runtime, caller, cluster_id, import_id)
