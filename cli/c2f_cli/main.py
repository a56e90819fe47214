"""`c2f`: run C2Future Match on this machine, seed the demo partnership, check status."""

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from c2f_cli import meetings as meeting_cli
from c2f_cli import seed as seeding
from c2f_cli import settings_doc
from c2f_cli import traces as traces_file
from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.mail import read_mail
from c2f_cli.processes import StartupFailed
from c2f_cli.stack import Stack
from c2f_cli.supervisor import GaveUp, Supervisor

app = typer.Typer(
    help=(
        "C2Future Match on this machine. `c2f up` runs everything on 127.0.0.1 "
        "(broker, database, SMTP sink, the four services) and seeds the demo partnership; "
        "`c2f status` shows what runs; `c2f seed` loads a partnership into a running stack. "
        "Settings come from C2F_* environment variables: `c2f config-reference` lists them "
        "(docs/configuration.md)."
    ),
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)  # long URLs stay on one line, so they can be clicked

DataDir = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Folder with clusters.json, members/*.json and events.json.",
        exists=True,
        file_okay=False,
    ),
]


def _seed(registration_url: str, data: Path, token: str) -> seeding.SeedResult:
    partnership = seeding.Partnership.load(data)
    result = seeding.SeedResult()
    # One correlation id for the whole run, so its effects can be followed through the logs.
    headers = {"X-Correlation-ID": f"seed-{uuid.uuid4()}", "Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=registration_url, timeout=30, headers=headers) as client,
        Progress(
            TextColumn("Seeding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("", total=partnership.steps())
        for label in seeding.seed(client, partnership, result):
            progress.update(task, advance=1, description=label)
    made = ", ".join(f"{n} {k}" for k, n in result.created.items()) or "nothing new"
    kept = ", ".join(f"{n} {k}" for k, n in result.existing.items())
    console.print(f"Seeded from {data}: created {made}" + (f"; already there: {kept}" if kept else "") + ".")
    return result


@app.command()
def up(
    seed: Annotated[bool, typer.Option(help="Seed the demo partnership once the services are ready.")] = True,
    data: DataDir = seeding.DEMO_DIR,
    traces: Annotated[
        bool,
        typer.Option(
            "--traces",
            help="Record OpenTelemetry traces in $C2F_HOME/traces; `c2f trace` shows them "
            "(C2F_TRACES=otlp sends them to a collector instead).",
        ),
    ] = False,
) -> None:
    """Start the whole platform on 127.0.0.1 and keep it running until Ctrl-C.

    Starts a Kafka-compatible broker (Tansu), a MongoDB-compatible database
    (SecantusDB, data in $C2F_HOME/mongo, default .c2f/), an SMTP sink that keeps
    every mail in $C2F_HOME/mail (Maildir), and the four services; then seeds the
    demo partnership through the registration API. A process that dies is started
    again after a pause (the others keep running); one that keeps crashing stops the
    platform with its log. Ctrl-C or SIGTERM stops every process it started. Logs are
    in $C2F_HOME/logs.
    """
    config = StackConfig.from_env()
    if traces:
        config = dataclasses.replace(config, traces="file")
    stack = Stack(config, say=lambda line: console.print(f"  [green]✓[/green] {line}"))
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    console.print(f"Starting C2Future Match (data and logs in {config.home})")
    try:
        stack.start()
        if seed:
            _seed(config.service_url("registration"), data, config.operator_token())
            _demo_meetings(config)
        _print_where_to_look(config)
        supervisor = Supervisor(stack, say=lambda line: console.print(f"  [yellow]![/yellow] {line}"))
        while True:
            try:
                supervisor.check()
            except GaveUp as gave_up:
                console.print(f"[red]{gave_up}; giving up[/red]. Its log:\n{gave_up.child.tail()}")
                raise typer.Exit(1) from None
            time.sleep(0.5)
    except StartupFailed as error:
        console.print(f"[red]Could not start:[/red] {error}")
        raise typer.Exit(1) from None
    except (seeding.SeedError, meeting_cli.MeetingsError) as error:
        console.print(f"[red]Seeding failed:[/red] {error}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("\nStopping…")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon children
        stack.stop()
        console.print("Stopped every process it started.")


def _operator(config: StackConfig, service: str) -> httpx.Client:
    return httpx.Client(
        base_url=config.service_url(service),
        headers={"Authorization": f"Bearer {config.operator_token()}"},
        timeout=30,
    )


def _b2b_events(config: StackConfig) -> list[dict[str, Any]]:
    try:
        with _operator(config, "registration") as registration:
            events: list[dict[str, Any]] = registration.get("/events", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    return [e for e in events if e["kind"] == "b2b"]


def _demo_meetings(config: StackConfig) -> None:
    """The demo's meetings: each suggested pair asks, most accept, and a schedule is published."""
    with _operator(config, "matching") as matching:
        for event in _b2b_events(config):
            outcomes: Counter[str] = Counter()
            with console.status(f"Demo meetings at {event['name']}: waiting for the suggestions…"):
                for step in meeting_cli.demo(matching, event["id"]):
                    outcomes[step] += 1
            said = ", ".join(f"{n} {k}" for k, n in outcomes.items() if k != "scheduled")
            console.print(
                f"Demo meetings at {event['name']}: {said or 'none'}; schedule published.", markup=False
            )


def _print_where_to_look(config: StackConfig) -> None:
    c2f = os.path.relpath(Path(sys.argv[0]).resolve()) if Path(sys.argv[0]).exists() else "c2f"
    others = ", ".join(f":{config.service_ports[name]}" for name in SERVICES[1:])
    console.print()
    console.print("[bold]C2Future Match is running.[/bold] Where to look:")
    console.print(f"  API docs        {config.service_url('registration')}/docs  (and {others})")
    console.print(f"  Dashboard       {config.service_url('reporting')}/dashboard")
    console.print(f"  Brochure (PDF)  {config.service_url('reporting')}/brochure.pdf")
    console.print(f"  Partnership     {config.service_url('reporting')}/reports/partnership")
    for event in _b2b_events(config):
        console.print(f"  {event['name']}:", markup=False)
        console.print(
            f"    Suggestions   {config.service_url('matching')}/events/{event['id']}/suggestions"
            f"  (operator token: {config.home / 'operator-token'})",
            markup=False,
        )
        console.print(f"    Schedule      {c2f} schedule {event['id']} --show")
    console.print(f"  Mail sent       {c2f} mail   (files in {config.maildir}/new)")
    console.print(f"  Status          {c2f} status")
    console.print(f"  Logs            {config.home / 'logs'}")
    console.print("  Stop            Ctrl-C")


@app.command("seed")
def seed_command(
    data: DataDir = seeding.DEMO_DIR,
    registration_url: Annotated[
        str | None, typer.Option(help="Registration service URL (default: the local stack's).")
    ] = None,
) -> None:
    """Load a partnership (clusters, members, events, participants) through the registration API.

    Signs in as the operator (C2F_OPERATOR_TOKEN, or the local stack's token in
    $C2F_HOME/operator-token). Safe to repeat: what is already registered is left as it is.
    """
    config = StackConfig.from_env()
    url = registration_url or config.service_url("registration")
    try:
        _seed(url, data, config.operator_token())
    except httpx.HTTPError as error:
        console.print(
            f"[red]Cannot reach registration at {url}:[/red] {error}. Is the stack running (`c2f up`)?"
        )
        raise typer.Exit(1) from None
    except seeding.SeedError as error:
        console.print(f"[red]Seeding failed:[/red] {error}")
        raise typer.Exit(1) from None


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the readiness reports as JSON.")] = False,
) -> None:
    """Show whether each service is ready (database, broker, consumers) and the partnership totals.

    Exits with 1 when a service is down or not ready.
    """
    config = StackConfig.from_env()
    reports = {}
    for name in SERVICES:
        url = config.service_url(name)
        try:
            reports[name] = httpx.get(f"{url}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError) as error:
            reports[name] = {"ready": False, "error": f"unreachable at {url} ({type(error).__name__})"}
    if as_json:
        console.print_json(json.dumps(reports))
    else:
        table = Table("service", "url", "ready", "details")
        for name, report in reports.items():
            details = report.get("error") or ", ".join(
                f"{k}: {v}" for k, v in report.get("checks", {}).items() if k != "consumers"
            )
            table.add_row(
                name,
                config.service_url(name),
                "[green]yes[/green]" if report.get("ready") else "[red]no[/red]",
                details,
            )
        console.print(table)
        if reports["reporting"].get("ready"):
            totals = httpx.get(f"{config.service_url('reporting')}/reports/partnership", timeout=5).json()
            console.print(
                "Partnership: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items())
            )
    if not all(r.get("ready") for r in reports.values()):
        raise typer.Exit(1)


@app.command()
def mail(
    last: Annotated[int, typer.Option(help="How many of the newest messages to list.")] = 20,
    show: Annotated[int | None, typer.Option(help="Print message number N of the list in full.")] = None,
) -> None:
    """List what the platform e-mailed, as kept by the local SMTP sink ($C2F_HOME/mail)."""
    maildir = StackConfig.from_env().maildir
    messages = read_mail(maildir)[-last:]
    if not messages:
        console.print(f"No mail in {maildir} yet.")
        return
    if show is not None:
        if not 1 <= show <= len(messages):
            console.print(f"[red]--show takes 1 to {len(messages)}[/red]")
            raise typer.Exit(2)
        message = messages[show - 1]
        for header in ("From", "To", "Subject", "Date"):
            if message[header]:
                console.print(f"[bold]{header}:[/bold] {message[header]}")
        body = message.get_body(preferencelist=("plain",))
        console.print()
        console.print(body.get_content() if body is not None else "(no text part)", markup=False)
        for attachment in message.iter_attachments():
            kind = f"{attachment.get_content_type()} {attachment.get_param('method') or ''}".strip()
            console.print(f"[bold]Attached:[/bold] {attachment.get_filename()} ({kind})")
        return
    table = Table("#", "kind", "lang", "to", "subject", title=f"{len(messages)} newest messages in {maildir}")
    for number, message in enumerate(messages, start=1):
        table.add_row(
            str(number),
            str(message["X-C2F-Kind"] or ""),
            str(message["Content-Language"] or ""),
            str(message["To"]),
            str(message["Subject"]),
        )
    console.print(table)


@app.command()
def trace(
    wanted: Annotated[
        str | None,
        typer.Argument(
            help="A trace id (or its start), or a correlation id (X-Correlation-ID, or a log line's)."
        ),
    ] = None,
    last: Annotated[int, typer.Option(help="Without an id: how many of the newest traces to list.")] = 15,
    database: Annotated[bool, typer.Option("--database", help="Show each database command too.")] = False,
    folder: Annotated[
        Path | None, typer.Option("--dir", help="Folder of span files (default: $C2F_HOME/traces).")
    ] = None,
) -> None:
    """Show one request's or event's way through the services, as recorded with `c2f up --traces`
    (or C2F_TRACES=file): a tree of spans, from the HTTP request through each service's handling
    of the events it caused, to the mails sent. Without an id, list the newest traces."""
    folder = folder or StackConfig.from_env().traces_dir
    if not folder.is_dir() or not any(folder.glob("*.jsonl")):
        console.print(f"No traces in {folder}: start the platform with `c2f up --traces`.")
        raise typer.Exit(1)
    if wanted is None:
        found = traces_file.load(folder)
        table = Table("started", "trace id", "began with", "services", "spans", "ms", "correlation id")
        rows = sorted((traces_file.summary(spans) for spans in found.values()), key=lambda r: r["started"])
        for row in rows[-last:]:
            table.add_row(
                f"{row['started']:%H:%M:%S}",
                row["trace_id"][:12],
                row["root"],
                ", ".join(row["services"]),
                str(row["spans"]),
                f"{row['ms']:.0f}",
                row["correlation_id"],
            )
        console.print(table)
        console.print("Show one: c2f trace <trace id or correlation id>")
        return
    spans = traces_file.find(folder, wanted)
    if spans is None:
        console.print(f"[red]No trace with id or correlation id {wanted!r} in {folder}.[/red]")
        raise typer.Exit(1)
    console.print(traces_file.tree(spans, database=database))


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@app.command("import")
def import_members(
    file: Annotated[Path | None, typer.Argument(help="The member list: .csv (UTF-8) or .xlsx.")] = None,
    cluster: Annotated[str | None, typer.Option(help="The cluster: its short name (e.g. DTI) or id.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; store nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some rows have problems.")
    ] = False,
    template: Annotated[
        Path | None, typer.Option(help="Write the import template (.csv or .xlsx) to this path and stop.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="C2F_API_KEY", help="The cluster's API key (default: the operator token)."),
    ] = None,
    registration_url: Annotated[str | None, typer.Option(help="Registration service URL.")] = None,
) -> None:
    """Import a cluster's member list from CSV or XLSX, with a progress bar.

    Re-importing the same file changes nothing; a changed row updates its company.
    Columns: see docs/import-template.md, or get the template with --template members.xlsx.
    """
    config = StackConfig.from_env()
    url = registration_url or config.service_url("registration")
    token = api_key or config.operator_token()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        try:
            if template is not None:
                kind = "xlsx" if template.suffix.lower() == ".xlsx" else "csv"
                response = client.get(f"/imports/template.{kind}")
                response.raise_for_status()
                template.write_bytes(response.content)
                console.print(f"Wrote the import template to {template}")
                return
            if file is None or cluster is None:
                console.print("[red]Give the FILE to import and --cluster (or --template PATH).[/red]")
                raise typer.Exit(2)
            _import(client, file, _cluster_id(client, cluster), dry_run, skip_invalid)
        except httpx.HTTPError as error:
            console.print(f"[red]Cannot reach registration at {url}:[/red] {error}")
            raise typer.Exit(1) from None


def _cluster_id(client: httpx.Client, name_or_id: str) -> str:
    response = client.get("/clusters")
    if response.status_code != 200:
        console.print(f"[red]Registration answered {response.status_code}:[/red] {response.text}")
        raise typer.Exit(1)
    for item in response.json():
        if (
            name_or_id in (item["id"], item["short_name"])
            or item["short_name"].casefold() == name_or_id.casefold()
        ):
            return str(item["id"])
    console.print(
        f"[red]No cluster {name_or_id!r}.[/red] Known: " + ", ".join(c["short_name"] for c in response.json())
    )
    raise typer.Exit(1)


def _import(client: httpx.Client, file: Path, cluster_id: str, dry_run: bool, skip_invalid: bool) -> None:
    if not file.is_file():
        console.print(f"[red]No file {file}[/red]")
        raise typer.Exit(2)
    content_type = XLSX if file.suffix.lower() in (".xlsx", ".xlsm") else "text/csv"
    response = client.post(
        f"/clusters/{cluster_id}/imports",
        content=file.read_bytes(),
        params={"dry_run": dry_run, "skip_invalid": skip_invalid},
        headers={"Content-Type": content_type},
    )
    body = response.json()
    if response.status_code == 422 and "report" not in body:
        console.print(f"[red]{body['detail']}[/red]")
        raise typer.Exit(1)
    report = body.get("report", body)
    if report.get("problems"):
        table = Table("row", "column", "problem", title=f"Problems in {file.name}")
        for problem in report["problems"]:
            table.add_row(str(problem["row"]), problem["column"] or "", problem["problem"])
        console.print(table)
    if response.status_code == 422:
        console.print(
            f"[red]Nothing was imported:[/red] {report['rejected']} of {report['total']} rows have problems. "
            "Fix them, or import the others with --skip-invalid."
        )
        raise typer.Exit(1)
    if response.status_code >= 400:
        console.print(f"[red]Registration answered {response.status_code}:[/red] {response.text}")
        raise typer.Exit(1)
    if dry_run:
        plan = f"would create {report['created']}, update {report['updated']}"
        plan += f", leave {report['unchanged']} unchanged"
        console.print(
            f"Dry run of {report['total']} rows: {plan}; "
            f"{report['rejected']} rows with problems. Nothing was stored."
        )
        raise typer.Exit(1 if report["problems"] else 0)
    with Progress(
        TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("", total=report["total"])
        while report["status"] == "running":
            time.sleep(0.3)
            report = client.get(f"/clusters/{cluster_id}/imports/{report['id']}").json()
            bar.update(task, completed=report["processed"])
    line = (
        f"created {report['created']}, updated {report['updated']}, unchanged {report['unchanged']}, "
        f"skipped {report['rejected']} rows with problems"
    )
    if report["status"] != "done":
        error = report.get("error") or ""
        console.print(
            f"[red]Import {report['status']}[/red] after {report['processed']} rows ({line}): {error}"
        )
        raise typer.Exit(1)
    console.print(f"Imported {report['total']} rows: {line}.")


OUTBOX_PATIENCE_S = 120.0


def _outboxes_published(config: StackConfig) -> list[str]:
    """Wait until each service has answered ready with nothing pending in its outbox (after a
    restart of the local stack, the events they publish again are then on the topics); returns
    the services still waiting after OUTBOX_PATIENCE_S."""
    waiting = set(SERVICES)
    deadline = time.monotonic() + OUTBOX_PATIENCE_S
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            try:
                ready = httpx.get(f"{config.service_url(name)}/readyz", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                continue
            if ready.get("ready") and ready.get("checks", {}).get("outbox_pending") == 0:
                waiting.discard(name)
        if waiting:
            time.sleep(0.5)
    return sorted(waiting)


@app.command()
def rebuild(
    service: Annotated[
        str, typer.Argument(help="The service whose read model to rebuild: matching or reporting.")
    ] = "matching",
) -> None:
    """Rebuild a service's read model (matching) or projections (reporting) from the topics
    (operator token). The reports come out the same.

    What the broker no longer keeps (Kafka retention) cannot come back. The local stack's
    broker keeps nothing across a restart: the services publish what their outboxes keep (every
    event, on the local stack) again when they start, and the rebuild waits until they have.
    """
    if service not in ("matching", "reporting"):
        console.print("[red]Only matching and reporting can be rebuilt.[/red]")
        raise typer.Exit(2)
    config = StackConfig.from_env()
    with console.status("Waiting until every service has published what its outbox holds…"):
        waiting = _outboxes_published(config)
    if waiting:
        console.print(
            f"[yellow]Not yet published after {OUTBOX_PATIENCE_S:.0f} s: {', '.join(waiting)}; "
            "the rebuild may miss their latest events.[/yellow]"
        )
    with console.status(f"Rebuilding {service} from the topics…"), _operator(config, service) as client:
        response = client.post("/admin/rebuild", timeout=600)
    if response.status_code != 200:
        console.print(f"[red]{service} answered {response.status_code}:[/red] {response.text}")
        raise typer.Exit(1)
    result = response.json()
    known = f", {result['companies']} companies known" if "companies" in result else ""
    console.print(f"Rebuilt {service}: {result['replayed']} events replayed{known}.")


@app.command()
def schedule(
    event_id: Annotated[str, typer.Argument(help="The event's id (see `c2f status` or GET /events).")],
    seconds: Annotated[
        float, typer.Option(help="Time the solver may take; 0: the fast heuristic alone.")
    ] = 10,
    show: Annotated[bool, typer.Option("--show", help="Only show the published schedule.")] = False,
) -> None:
    """Schedule an event's accepted meetings into slots and tables (operator token), or show
    the published schedule. A new version moves as few published meetings as it can."""
    config = StackConfig.from_env()
    with _operator(config, "matching") as matching:
        if not show:
            with console.status(f"Scheduling (up to {seconds:g} s)…"):
                try:
                    meeting_cli.schedule(matching, event_id, seconds)
                except (meeting_cli.MeetingsError, httpx.HTTPError) as error:
                    console.print(f"[red]Could not schedule:[/red] {error}")
                    raise typer.Exit(1) from None
        response = matching.get(f"/events/{event_id}/schedule")
    if response.status_code != 200:
        console.print(f"[red]matching answered {response.status_code}:[/red] {response.text}")
        raise typer.Exit(1)
    grid = response.json()
    table = Table(
        title=f"Schedule v{grid['schedule_version']} of {event_id}" + (" (stale)" if grid["stale"] else "")
    )
    for column in ("slot", "table", "who"):
        table.add_column(column)
    for meeting in grid["meetings"]:
        placement = meeting["placement"]
        table.add_row(
            placement["slot_id"], placement["table"], " ↔ ".join(p["name"] for p in meeting["parties"])
        )
    console.print(table)
    console.print(
        f"{grid['scheduled']} of {grid['accepted']} accepted meetings scheduled, {grid['moved']} moved, "
        f"{grid['unscheduled']} dropped, {grid['idle_slots']} idle slots; "
        f"{grid['method']}{' (proven optimal)' if grid['proven_optimal'] else ''}, {grid['seconds']:g} s."
    )
    if grid.get("bound"):
        console.print(
            f"Worth {grid['value']:,} of at most {grid['bound']:,} possible "
            f"({100 * grid['share_of_bound']:.1f} % of the best any schedule could do; "
            "meetings weighted by priority)."
        )


dead_letters_app = typer.Typer(
    help="Messages a service set aside (unreadable, or failing 5 times): list them, and re-drive "
    "one once its cause is fixed. Uses the operator token; C2F_<SERVICE>_PORT say where services are."
)
app.add_typer(dead_letters_app, name="dead-letters")


@dead_letters_app.command("list")
def dead_letters_list(
    service: Annotated[
        str | None, typer.Option(help="Only this service (registration, matching, notifications, reporting).")
    ] = None,
    redriven: Annotated[bool, typer.Option("--redriven", help="Also those already re-driven.")] = False,
) -> None:
    """List the dead letters of every service (or one), newest first, with the reason."""
    config = StackConfig.from_env()
    table = Table("service", "id", "topic[partition]@offset", "set aside", "reason", "re-driven")
    found = 0
    for name in [service] if service else SERVICES:
        try:
            with _operator(config, name) as client:
                response = client.get("/dead-letters", params={"redriven": redriven})
        except httpx.TransportError as error:
            console.print(f"[red]{name} does not answer at {config.service_url(name)}:[/red] {error}")
            raise typer.Exit(1) from None
        if response.status_code != 200:
            console.print(f"[red]{name} answered {response.status_code}:[/red] {response.text}")
            raise typer.Exit(1)
        for letter in response.json():
            found += 1
            table.add_row(
                name,
                letter["id"],
                f"{letter['topic']}[{letter['partition']}]@{letter['offset']}",
                letter["at"][:19].replace("T", " "),
                letter["reason"],
                letter["redrive_outcome"] or "",
            )
    if found:
        console.print(table)
    console.print(f"{found} dead letter(s).")


@dead_letters_app.command("redrive")
def dead_letters_redrive(
    service: Annotated[str, typer.Argument(help="The service that set it aside.")],
    dead_letter_id: Annotated[str, typer.Argument(help="Its id, from `c2f dead-letters list`.")],
) -> None:
    """Process a dead letter again, through the consumer of its topic."""
    if service not in SERVICES:
        console.print(f"[red]No service {service!r}: choose one of {', '.join(SERVICES)}.[/red]")
        raise typer.Exit(2)
    config = StackConfig.from_env()
    with _operator(config, service) as client:
        response = client.post(f"/dead-letters/{dead_letter_id}/redrive")
    if response.status_code != 200:
        console.print(f"[red]Not re-driven ({response.status_code}):[/red] {response.json().get('detail')}")
        raise typer.Exit(1)
    console.print(f"Re-driven: {response.json()['redrive_outcome']}.")


@app.command("config-reference")
def config_reference(
    output: Annotated[
        Path | None,
        typer.Option(help="Write it to this file (docs/configuration.md) instead of printing it."),
    ] = None,
) -> None:
    """Print every environment variable the services and `c2f` read, as Markdown.

    One table per service (variable, type, default, description), made from
    the settings classes and their field descriptions, and one for `c2f` and
    the local stack. docs/configuration.md is this output: after changing a
    setting, run `c2f config-reference --output docs/configuration.md`
    (a unit test fails until the two agree).
    """
    text = settings_doc.reference(app)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"Wrote {output}")
