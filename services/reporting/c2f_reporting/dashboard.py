"""The dashboard: one page for operators and cluster managers with the headline numbers and
charts drawn on the server as SVG (nothing is loaded from anywhere else: it works offline),
filtered by event and cluster, with links to the exports and brochures."""

from collections import Counter
from html import escape
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from c2f_reporting import breakdown
from c2f_reporting.brochure import COUNTRIES
from c2f_reporting.store import AGREEMENTS, CLUSTERS, COMPANIES, EVENTS

_templates = Environment(
    loader=PackageLoader("c2f_reporting", "templates"), autoescape=select_autoescape(("html.j2",))
)
BLUE, GREEN, ORANGE, GREY = "#0b5cad", "#2e8540", "#d9822b", "#9aa5b1"


def bars(title: str, items: list[tuple[str, int]], color: str = BLUE) -> Markup:
    """A horizontal bar chart; each bar labelled with its value."""
    row, label_w, width = 22, 215, 560
    top = max((v for _, v in items), default=0) or 1
    height = row * max(len(items), 1) + 8
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append('<text x="0" y="16" fill="#666">No data yet</text>')
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = (width - label_w - 50) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{escape(label[:28])}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="{color}" rx="2">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12" class="value">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped(title: str, rows: list[dict[str, Any]], series: list[tuple[str, str, str]]) -> Markup:
    """Vertical grouped bars: one group per row (e.g. a month), one bar per series."""
    width, height, left, bottom = 560, 220, 36, 30
    top = max((r[key] for r in rows for key, _, _ in series), default=0) or 1
    slot = (width - left) / max(len(rows), 1)
    bar = max(4.0, min(22.0, (slot - 10) / len(series)))
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#ccc"/>'
    ]
    if not rows:
        parts.append('<text x="40" y="40" fill="#666">No data yet</text>')
    for i, row in enumerate(rows):
        x0 = left + i * slot + 5
        for j, (key, name, color) in enumerate(series):
            h = (height - bottom - 10) * row[key] / top
            x = x0 + j * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(row["label"])} · {name}: {row[key]}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + len(series) * bar / 2:.1f}" y="{height - 12}" text-anchor="middle" '
            f'font-size="11">{escape(str(row["label"]))}</text>'
        )
    legend_x = left
    for _, name, color in series:
        parts.append(
            f'<rect x="{legend_x}" y="2" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="11" font-size="11">{escape(name)}</text>'
        )
        legend_x += 14 + 7 * len(name) + 16
    parts.append("</svg>")
    return Markup("".join(parts))


def matrix(names: list[str], cells: dict[tuple[str, str], int]) -> Markup:
    """Who met whom: countries × countries, shaded by the number of accepted meetings."""
    if not names:
        return Markup('<p class="muted">No accepted meetings yet.</p>')
    top = max(cells.values()) or 1
    head = "".join(f"<th scope='col'>{escape(n)}</th>" for n in names)
    body = []
    for a in names:
        cols = []
        for b in names:
            n = cells.get((a, b), 0)
            alpha = 0.12 + 0.88 * n / top if n else 0
            style = f"background: rgba(11,92,173,{alpha:.2f}); color: {'#fff' if alpha > 0.55 else '#1b1f24'}"
            cols.append(f"<td style='{style}' title='{escape(a)}–{escape(b)}: {n}'>{n or ''}</td>")
        body.append(f"<tr><th scope='row'>{escape(a)}</th>{''.join(cols)}</tr>")
    rows = "".join(body)
    label = "aria-label='Meetings between countries'"
    return Markup(f"<table class='matrix' {label}><tr><th></th>{head}</tr>{rows}</table>")


async def page(db: Any, event: str | None, cluster: str | None) -> str:
    events = (
        await db[EVENTS].find({}, {"name": 1, "kind": 1, "starts_at": 1}).sort("starts_at", 1).to_list(None)
    )
    clusters = await db[CLUSTERS].find({}, {"name": 1}).sort("name", 1).to_list(None)
    by_event = await breakdown.rows(db, "event", event, cluster)
    totals = {key: sum(r[key] for r in by_event) for key in breakdown.COUNTED}
    company_query = {"cluster_id": cluster} if cluster else {}
    agreement_query = {"cluster_ids": cluster} if cluster else {}
    companies = await db[COMPANIES].find(company_query, {"target_markets": 1, "sectors": 1}).to_list(None)
    totals["companies"] = len(companies)
    markets = Counter(m for c in companies for m in c.get("target_markets", []))
    sectors = Counter(s for c in companies for s in c.get("sectors", []))
    months = await breakdown.rows(db, "month", event, cluster)
    names, cells = await breakdown.country_matrix(db, event)
    outcomes = [
        ("held", totals["meetings_held"]),
        ("no-show", totals["no_shows"]),
        ("further contact", totals["further_contact"]),
        ("offer sent", totals["offers_sent"]),
        ("agreement signed", totals["agreements_signed"]),
    ]
    return _templates.get_template("dashboard.html.j2").render(
        events=events,
        clusters=clusters,
        event=event,
        cluster=cluster,
        tiles=[
            ("Clusters", await db[CLUSTERS].count_documents({})),
            ("Companies", totals["companies"]),
            ("Events", len(events)),
            ("Participants", totals["participants"]),
            ("Meeting requests", totals["meeting_requests"]),
            ("Accepted", totals["meetings_accepted"]),
            ("Scheduled", totals["meetings_scheduled"]),
            ("Held", totals["meetings_held"]),
            # Two kinds, named plainly: the partnership's own agreements between clusters, and
            # business agreements members signed after meeting.
            ("Partnership agreements", await db[AGREEMENTS].count_documents(agreement_query)),
            ("Business agreements", totals["agreements_signed"]),
        ],
        over_time=grouped(
            "Meetings per month",
            months,
            [
                ("meeting_requests", "requested", GREY),
                ("meetings_accepted", "accepted", BLUE),
                ("meetings_held", "held", GREEN),
            ],
        ),
        countries=matrix(names, cells),
        sectors=bars(
            "Companies per sector", [(k.replace("_", " "), v) for k, v in sectors.most_common()], GREEN
        ),
        outcomes=bars("Outcomes of meetings", outcomes, ORANGE),
        markets=bars(
            "Companies per target market", [(COUNTRIES.get(k, k), v) for k, v in markets.most_common(12)]
        ),
        market_codes=[k for k, _ in markets.most_common(12)],
        dimensions=breakdown.DIMENSIONS,
    )
