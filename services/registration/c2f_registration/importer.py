"""Reading a cluster's member list from a spreadsheet (CSV or XLSX), one company per row.

Pure: bytes in, companies and problems out. Every problem names the row (as the
spreadsheet numbers it: the header is row 1) and the column. The columns are
documented in docs/import-template.md and in the template files this module writes.
"""

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import pydantic
from openpyxl import Workbook, load_workbook

from c2f_registration.schemas import CompanyFields

MAX_ROWS = 5000
MAX_OFFERS = MAX_NEEDS = 3
MAX_OBSTACLES = 3
MAX_CONTACTS = 2

SIMPLE = ["legal_name", "country", "city", "website", "size_band"]
LISTS = ["sectors", "sub_sectors", "tags", "target_markets", "working_languages"]
OFFER = ["title", "description", "category", "language"]
NEED = ["title", "description", "kind", "category", "language"]
OBSTACLE = ["kind", "detail"]
CONTACT = ["name", "email", "phone", "role", "language", "consent"]
CONNECTIONS = ["connection_markets", "connection_organisations"]


def columns() -> list[str]:
    """Every column of the template, in order."""
    cols = SIMPLE + LISTS
    cols += [f"offer_{i}_{f}" for i in range(1, MAX_OFFERS + 1) for f in OFFER]
    cols += [f"need_{i}_{f}" for i in range(1, MAX_NEEDS + 1) for f in NEED]
    cols += [f"obstacle_{i}_{f}" for i in range(1, MAX_OBSTACLES + 1) for f in OBSTACLE]
    cols += CONNECTIONS
    cols += [f"contact_{i}_{f}" for i in range(1, MAX_CONTACTS + 1) for f in CONTACT]
    return cols


EXAMPLE = {
    "legal_name": "Sensores Bizkaia S.L.",
    "country": "ES",
    "city": "Bilbao",
    "website": "https://sensores.example",
    "size_band": "small",
    "sectors": "ict; environmental_technologies",
    "sub_sectors": "iot; air_quality",
    "tags": "NO2; partículas",
    "target_markets": "MX; US-CA",
    "working_languages": "es; en",
    "offer_1_title": "Sensores de calidad del aire",
    "offer_1_description": "Estaciones IoT que miden partículas y NO2 en tiempo real.",
    "offer_1_category": "air_quality_monitoring",
    "offer_1_language": "es",
    "need_1_title": "Distribuidor en México",
    "need_1_description": "Buscamos un distribuidor con contactos en municipios.",
    "need_1_kind": "distributor",
    "need_1_language": "es",
    "obstacle_1_kind": "certification",
    "obstacle_1_detail": "Certificación NOM para México",
    "connection_markets": "FR; PT",
    "contact_1_name": "Elena Ortiz",
    "contact_1_email": "elena.ortiz@sensores.example",
    "contact_1_language": "es",
    "contact_1_consent": "brochure",
}


@dataclass(frozen=True)
class Problem:
    row: int
    column: str | None
    message: str


@dataclass
class Sheet:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (row number, company fields)
    problems: list[Problem] = field(default_factory=list)
    total: int = 0


class UnreadableFile(ValueError):
    pass


def read(content: bytes, filename: str) -> Sheet:
    """Companies and problems from a CSV or XLSX file."""
    table = _xlsx(content) if filename.lower().endswith((".xlsx", ".xlsm")) else _csv(content)
    if not table:
        raise UnreadableFile("the file is empty")
    header = [str(h or "").strip().lower() for h in table[0]]
    sheet = Sheet()
    known = set(columns())
    for index, name in enumerate(header):
        if name and name not in known:
            sheet.problems.append(Problem(1, name, "unknown column (see the template)"))
        if name and header.index(name) != index:
            sheet.problems.append(Problem(1, name, "column appears twice"))
    if "legal_name" not in header:
        sheet.problems.append(Problem(1, "legal_name", "required column is missing"))
        return sheet
    body = [(n, r) for n, r in enumerate(table[1:], start=2) if any(str(c or "").strip() for c in r)]
    if len(body) > MAX_ROWS:
        raise UnreadableFile(f"{len(body)} rows: at most {MAX_ROWS} per file")
    sheet.total = len(body)
    seen: dict[str, int] = {}
    for number, cells in body:
        values = {name: _cell(cells, i) for i, name in enumerate(header) if name in known}
        company, problems = _company(number, values)
        if company is not None:
            key = company["legal_name"].casefold()
            if key in seen:
                problems.append(Problem(number, "legal_name", f"same company as row {seen[key]}"))
                company = None
            else:
                seen[key] = number
        sheet.problems += problems
        if company is not None:
            sheet.rows.append((number, company))
    return sheet


def _csv(content: bytes) -> list[list[Any]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile("a CSV file must be UTF-8 (save it as 'CSV UTF-8')") from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _xlsx(content: bytes) -> list[list[Any]]:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means we cannot read it
        raise UnreadableFile(f"not a readable XLSX file ({type(error).__name__})") from None
    rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    workbook.close()
    return rows


def _cell(cells: list[Any] | tuple[Any, ...], index: int) -> str:
    value = cells[index] if index < len(cells) else None
    return "" if value is None else str(value).strip()


def _split(value: str, commas: bool = True) -> list[str]:
    """Items separated by ';' (or ',' too, for codes: free text may hold commas)."""
    if commas:
        value = value.replace(",", ";")
    return [part.strip() for part in value.split(";") if part.strip()]


FREE_TEXT_LISTS = {"tags", "connection_organisations"}


def _company(row: int, values: dict[str, str]) -> tuple[dict[str, Any] | None, list[Problem]]:
    data: dict[str, Any] = {k: values[k] for k in SIMPLE if values.get(k)}
    columns_of: dict[tuple[Any, ...], str] = {(k,): k for k in SIMPLE + LISTS}
    for name in LISTS:
        data[name] = _split(values.get(name, ""), commas=name not in FREE_TEXT_LISTS)
    for plural, prefix, fields, count in (
        ("offers", "offer", OFFER, MAX_OFFERS),
        ("needs", "need", NEED, MAX_NEEDS),
        ("obstacles", "obstacle", OBSTACLE, MAX_OBSTACLES),
        ("contacts", "contact", CONTACT, MAX_CONTACTS),
    ):
        items: list[dict[str, str]] = []
        for i in range(1, count + 1):
            item = {f: values[f"{prefix}_{i}_{f}"] for f in fields if values.get(f"{prefix}_{i}_{f}")}
            if item:
                for f in fields:
                    columns_of[(plural, len(items), f)] = f"{prefix}_{i}_{f}"
                columns_of[(plural, len(items))] = f"{prefix}_{i}_{fields[0]}"
                items.append(item)
        data[plural] = items
    markets = _split(values.get("connection_markets", ""))
    organisations = _split(values.get("connection_organisations", ""), commas=False)
    data["connections"] = [{"market": m} for m in markets] + [{"organisation": o} for o in organisations]
    try:
        CompanyFields.model_validate(data)
    except pydantic.ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            loc = tuple(e["loc"])
            column = next(
                (columns_of[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in columns_of), None
            )
            if column is None and loc[:1] == ("connections",):
                column = "connection_markets"
            problems.append(Problem(row, column, e["msg"].removeprefix("Value error, ")))
        return None, problems
    return data, []


def template_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns())
    writer.writerow([EXAMPLE.get(c, "") for c in columns()])
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read it as UTF-8


def template_xlsx() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "members"
    sheet.append(columns())
    sheet.append([EXAMPLE.get(c, "") for c in columns()])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
