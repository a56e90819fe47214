"""Bulk imports of a cluster's member list: check a file, start the import, run it in
the background, and report how far it got. (Reading the spreadsheet itself is `importer`.)

A dry run stores nothing and reports every problem by row and column, and what
would be created, updated or left unchanged. A file with problems is refused
unless the caller skips the invalid rows. Re-importing the same file changes
nothing; a changed row updates its company.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from c2f_registration import api_keys, companies, importer
from c2f_registration.api_keys import Principal
from c2f_registration.errors import NotFound, UnreadableFile
from c2f_registration.schemas import CompanyFields, ImportReport, ProblemOut
from c2f_shared.service import Runtime
from c2f_shared.service.apart import update_apart

log = logging.getLogger(__name__)

IMPORTS = "imports"
_running: set[asyncio.Task[None]] = set()  # keeps background imports alive until they finish


@dataclass(frozen=True)
class Refusal:
    """A file with problems, not imported: each problem, and the report of the check."""

    problems: list[importer.Problem]
    report: ImportReport


def read(content: bytes, is_xlsx: bool) -> importer.Sheet:
    try:
        return importer.read(content, "upload.xlsx" if is_xlsx else "upload.csv")
    except importer.UnreadableFile as error:
        raise UnreadableFile(f"cannot read the file: {error}") from None


async def check_or_start(
    runtime: Runtime,
    caller: Principal,
    cluster_id: str,
    content: bytes,
    is_xlsx: bool,
    *,
    dry_run: bool,
    skip_invalid: bool,
    correlation: str,
) -> ImportReport | Refusal:
    """The dry run's report (status 'checked'); or the started import's (status 'running');
    or a Refusal when the file has problems that are not to be skipped."""
    await api_keys.own_cluster(runtime, caller, cluster_id)
    sheet = read(content, is_xlsx)
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
            outcome = await companies.plan(runtime, cluster_id, fields)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report
    header_problems = any(p.row == 1 for p in sheet.problems)
    if sheet.problems and (not skip_invalid or header_problems):
        return Refusal(sheet.problems, report)
    report.id = str(uuid.uuid4())
    report.status = "running"
    await runtime.db[IMPORTS].insert_one(
        {"_id": report.id, **report.model_dump(mode="json", exclude={"id"}), "started_at": datetime.now(UTC)}
    )
    task = asyncio.create_task(_run(runtime, report, sheet.rows, correlation), name=f"import-{report.id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return report


async def _run(
    runtime: Runtime, report: ImportReport, rows: list[tuple[int, dict[str, Any]]], correlation: str
) -> None:
    imports = runtime.db[IMPORTS]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    try:
        for processed, (_, fields) in enumerate(rows, start=1):
            outcome = await companies.save(
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


async def status(runtime: Runtime, caller: Principal, cluster_id: str, import_id: str) -> ImportReport:
    """How far an import has got, and how it ended."""
    caller.require_may_act_for(cluster_id)
    doc = await runtime.db[IMPORTS].find_one({"_id": import_id, "cluster_id": cluster_id})
    if doc is None:
        raise NotFound("import", import_id)
    return ImportReport(**{k: v for k, v in doc.items() if k in ImportReport.model_fields}, id=doc["_id"])


async def interrupt_unfinished(runtime: Runtime) -> None:
    """At start-up: an import still 'running' was cut short by a restart (re-run it: it is idempotent)."""
    await update_apart(runtime.db[IMPORTS], {"status": "running"}, {"$set": {"status": "interrupted"}})
