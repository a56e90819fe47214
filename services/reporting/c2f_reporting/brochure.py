"""The Smart City brochure: the catalogue of members' products and services that partners
in target markets receive, grouped by sector, each company with its cluster, country, offers
and target markets, and its contact only where the contact agreed to appear in the brochure.
Served as HTML and as a typeset PDF (WeasyPrint: cover, contents with page numbers, running
page numbers; DejaVu fonts for Latin, Cyrillic and Greek). The PDF needs Pango, which
WeasyPrint loads when it is imported: without it, `pdf` raises `PdfUnavailable` and the rest of
the service runs on."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from c2f_reporting.store import CLUSTERS, COMPANIES
from c2f_shared.vocabulary import COUNTRY_NAMES

log = logging.getLogger(__name__)
COUNTRIES = COUNTRY_NAMES
# The Debian packages WeasyPrint's PDFs need (the Makefile's PDF_PACKAGES, the reporting image's).
PDF_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-dejavu-core")
SECTORS = {
    "ict": "ICT",
    "mobility": "Mobility",
    "construction": "Construction",
    "environmental_technologies": "Environmental technologies",
    "energy": "Energy",
}

_templates = Environment(
    loader=PackageLoader("c2f_reporting", "templates"), autoescape=select_autoescape(("html.j2",))
)


@dataclass
class Filters:
    market: str | None = None
    sector: str | None = None
    cluster: str | None = None

    def title(self, clusters: dict[str, Any]) -> str:
        parts = []
        if self.market:
            parts.append(f"for {COUNTRIES.get(self.market, self.market)}")
        if self.sector:
            parts.append(SECTORS.get(self.sector, self.sector.replace("_", " ")).lower())
        if self.cluster:
            parts.append(clusters.get(self.cluster, {}).get("name", self.cluster))
        return ", ".join(parts)


@dataclass
class Section:
    key: str
    name: str
    companies: list[dict[str, Any]] = field(default_factory=list)


async def sections(db: Any, filters: Filters) -> tuple[list[Section], dict[str, Any]]:
    query: dict[str, Any] = {"offers.0": {"$exists": True}}
    if filters.market:
        query["target_markets"] = filters.market
    if filters.sector:
        query["sectors"] = filters.sector
    if filters.cluster:
        query["cluster_id"] = filters.cluster
    clusters = {c["_id"]: c async for c in db[CLUSTERS].find({})}
    by_sector: dict[str, Section] = {}
    async for company in db[COMPANIES].find(query).sort("legal_name", 1):
        sector = (company.get("sectors") or ["other"])[0] if not filters.sector else filters.sector
        section = by_sector.setdefault(
            sector, Section(sector, SECTORS.get(sector, sector.replace("_", " ").title()))
        )
        cluster = clusters.get(company.get("cluster_id"), {})
        section.companies.append(
            {
                "id": company["_id"],
                "name": company["legal_name"],
                "country": COUNTRIES.get(company.get("country", ""), company.get("country", "")),
                "city": company.get("city"),
                "website": company.get("website"),
                "cluster": cluster.get("name", ""),
                "offers": company.get("offers", []),
                "markets": [COUNTRIES.get(m, m) for m in company.get("target_markets", [])],
                # Reporting keeps only contacts that consented to the brochure.
                "contacts": [c for c in company.get("contacts", []) if c.get("consent") == "brochure"],
            }
        )
    return sorted(by_sector.values(), key=lambda s: s.name), clusters


async def html(db: Any, filters: Filters) -> str:
    found, clusters = await sections(db, filters)
    return _templates.get_template("brochure.html.j2").render(
        sections=found,
        subtitle=filters.title(clusters),
        count=sum(len(s.companies) for s in found),
        made=datetime.now(UTC).strftime("%d %B %Y"),
    )


class PdfUnavailable(Exception):
    """WeasyPrint cannot load Pango (or another library it needs) on this machine."""

    def __init__(self, cause: OSError) -> None:
        self.cause = cause
        super().__init__(
            "the PDF brochure needs Pango, which this server does not have: install the Debian "
            f"packages {' '.join(PDF_PACKAGES)} (the HTML brochure works without them)"
        )


def pdf(document: str) -> bytes:
    try:
        from weasyprint import HTML  # imported when needed: it loads Pango
    except OSError as error:  # cffi could not open a library
        log.warning("no PDF brochure: WeasyPrint cannot load its libraries (%s)", error)
        raise PdfUnavailable(error) from error

    rendered: bytes = HTML(string=document).write_pdf()
    return rendered
