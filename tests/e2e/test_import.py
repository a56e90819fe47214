"""Bulk import of member lists over HTTP and through `c2f import`: dry run, problems by
row and column, idempotent re-import, updates, CSV and XLSX alike."""

import csv
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openpyxl import Workbook

from c2f_cli.stack import Stack
from c2f_registration import importer
from tests.infra import running_stack
from tests.support import as_operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NAMES = [
    "Ѕвезда Сензори д.о.о.",
    "Ηλιακή Ενέργεια Α.Ε.",
    "Energía Norte S.L.",
    "Città Verde S.r.l.",
    "Умна Светлина ООД",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("import"), services=True) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster_id(stack: Stack) -> AsyncIterator[str]:
    async with as_operator(stack) as operator:
        response = await operator.post(
            "/clusters",
            json={"name": "Import cluster", "short_name": "IMP", "country": "RS", "sectors": ["ict"]},
        )
        yield response.json()["id"]


def rows(n: int) -> list[dict[str, str]]:
    return [
        {
            **importer.EXAMPLE,
            "legal_name": f"{NAMES[i % len(NAMES)]} {i}",
            "contact_1_email": f"contact{i}@import.example",
            "tags": "умна мрежа; smart grid, v2",
        }
        for i in range(n)
    ]


def to_csv(records: list[dict[str, str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(records: list[dict[str, str]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(records[0]))
    for record in records:
        sheet.append(list(record.values()))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def post_file(stack: Stack, cluster_id: str, content: bytes, **params: Any) -> Any:
    content_type = importer_content_type(content)
    async with as_operator(stack) as operator:
        return await operator.post(
            f"/clusters/{cluster_id}/imports",
            content=content,
            params=params,
            headers={"Content-Type": content_type},
        )


def importer_content_type(content: bytes) -> str:
    return (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if content[:2] == b"PK"
        else "text/csv"
    )


async def test_the_templates_import_cleanly(stack: Stack, cluster_id: str) -> None:
    async with as_operator(stack) as operator:
        for kind in ("csv", "xlsx"):
            template = await operator.get(f"/imports/template.{kind}")
            assert template.status_code == 200
            report = (await post_file(stack, cluster_id, template.content, dry_run=True)).json()
            assert (report["total"], report["created"], report["problems"]) == (1, 1, []), report


async def test_a_dry_run_reports_every_problem_by_row_and_column_and_stores_nothing(
    stack: Stack, cluster_id: str
) -> None:
    records = rows(8)
    records[1]["offer_1_category"] = "teleportation"
    records[3]["contact_1_email"] = "not-an-email"
    records[5]["legal_name"] = records[0]["legal_name"]
    records[6]["sub_sectors"] = "bim"  # a construction sub-sector, but not a construction company
    content = to_csv(records, delimiter=";")  # as Excel writes CSV in most of Europe
    report = (await post_file(stack, cluster_id, content, dry_run=True)).json()
    found = {(p["row"], p["column"]) for p in report["problems"]}
    assert found == {(3, "offer_1_category"), (5, "contact_1_email"), (7, "legal_name"), (8, "sub_sectors")}
    assert (report["total"], report["rejected"], report["created"]) == (8, 4, 4)
    refused = await post_file(stack, cluster_id, content)
    assert refused.status_code == 422
    assert ["file", "row 3", "offer_1_category"] in [p["loc"] for p in refused.json()["detail"]]
    async with as_operator(stack) as operator:
        assert (await operator.get("/companies", params={"cluster_id": cluster_id})).json()["total"] == 0


async def test_an_unreadable_file_or_unknown_column_is_explained(stack: Stack, cluster_id: str) -> None:
    garbage = await post_file(stack, cluster_id, b"PK\x03\x04 not really a workbook", dry_run=True)
    assert garbage.status_code == 422 and "cannot read the file" in garbage.json()["detail"]
    unknown = (await post_file(stack, cluster_id, b"legal_name,colour\nX,blue\n", dry_run=True)).json()
    assert {"row": 1, "column": "colour", "problem": "unknown column (see the template)"} in unknown[
        "problems"
    ]


def c2f(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = stack.config
    env = {
        **os.environ,
        "C2F_HOME": str(cfg.home),
        "C2F_REGISTRATION_PORT": str(cfg.service_ports["registration"]),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("c2f")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_c2f_import_is_idempotent_and_updates_changed_rows(
    stack: Stack, cluster_id: str, tmp_path: Path
) -> None:
    records = rows(60)
    csv_file = tmp_path / "members.csv"
    csv_file.write_bytes(to_csv(records))

    first = c2f(stack, "import", str(csv_file), "--cluster", "IMP")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Imported 60 rows: created 60, updated 0, unchanged 0" in first.stdout

    again = c2f(stack, "import", str(csv_file), "--cluster", "IMP")
    assert "created 0, updated 0, unchanged 60" in again.stdout, again.stdout

    records[7]["city"] = "Нови Сад"
    xlsx_file = tmp_path / "members.xlsx"
    xlsx_file.write_bytes(to_xlsx(records))
    dry = c2f(stack, "import", str(xlsx_file), "--cluster", "IMP", "--dry-run")
    assert dry.returncode == 0 and "would create 0, update 1, leave 59 unchanged" in dry.stdout, dry.stdout
    changed = c2f(stack, "import", str(xlsx_file), "--cluster", "IMP")
    assert "created 0, updated 1, unchanged 59" in changed.stdout, changed.stdout

    async with as_operator(stack) as operator:
        listed = (await operator.get("/companies", params={"q": records[7]["legal_name"]})).json()["items"]
        assert [(c["city"], c["revision"]) for c in listed] == [("Нови Сад", 2)]
        assert listed[0]["tags"] == ["умна мрежа", "smart grid, v2"]
        assert (await operator.get("/companies", params={"cluster_id": cluster_id})).json()["total"] == 60


async def test_skip_invalid_imports_the_valid_rows(stack: Stack, cluster_id: str, tmp_path: Path) -> None:
    records = rows(3)
    for record in records:
        record["legal_name"] += " skip"
    records[1]["country"] = "Serbia"
    path = tmp_path / "some-bad.csv"
    path.write_bytes(to_csv(records))
    refused = c2f(stack, "import", str(path), "--cluster", "IMP")
    assert refused.returncode == 1 and "Nothing was imported" in refused.stdout
    assert "country" in refused.stdout
    done = c2f(stack, "import", str(path), "--cluster", "IMP", "--skip-invalid")
    assert done.returncode == 0 and "created 2" in done.stdout and "skipped 1" in done.stdout, done.stdout


async def test_template_download(stack: Stack, tmp_path: Path) -> None:
    target = tmp_path / "template.xlsx"
    result = c2f(stack, "import", "--template", str(target))
    assert result.returncode == 0 and target.read_bytes()[:2] == b"PK"

    async def nothing_pending() -> bool:
        async with as_operator(stack) as operator:
            return bool((await operator.get("/readyz")).json()["checks"]["outbox_pending"] == 0)

    await eventually(nothing_pending)
