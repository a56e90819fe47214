"""`c2f up`, the launcher behind `make up`: starts everything, seeds the demo,
keeps data across restarts, starts a killed process again (each service and the broker, killed
in turn while sign-ups stream in, then a Ctrl-C and a start: nothing lost or doubled), and stops
every process it started on SIGINT and SIGTERM."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.databases import Databases
from c2f_cli.processes import free_port_run
from c2f_cli.seed import DEMO_DIR, Partnership
from c2f_notifications.config import Settings as NotificationSettings
from tests.e2e.scene import Brokerage, brokerage
from tests.support import of_kind, read_mail, settled

# `c2f up` seeds the demo and plays its meetings: minutes on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # One run of free ports outside the range outgoing connections take theirs from: the
    # services', the broker's, the SMTP sink's, then a database for each service. (Ports picked
    # one by one in that range were sometimes taken before `c2f up` bound them, and it refused
    # to start.)
    first = free_port_run(2 * len(SERVICES) + 2)
    ports = {f"C2F_{name.upper()}_PORT": str(first + i) for i, name in enumerate(SERVICES)}
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("C2F_")},
        "C2F_HOME": str(tmp_path_factory.mktemp("c2f-home")),
        "C2F_KAFKA_PORT": str(first + len(SERVICES)),
        "C2F_SMTP_PORT": str(first + len(SERVICES) + 1),
        "C2F_MONGO_PORT": str(first + len(SERVICES) + 2),  # and the ports after it
        "C2F_NOTIFICATIONS_DIGEST_DELAY_SECONDS": "1",  # not a minute
        **ports,
    }


def wait_for(condition, within: float = 240.0, what: str = "condition"):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {within}s")


def report(env: dict[str, str]) -> dict[str, int] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{env['C2F_REPORTING_PORT']}/reports/partnership", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def launcher(env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[bytes]]:
    args = [str(Path(sys.executable).with_name("c2f")), "up", *request.param]
    log = Path(env["C2F_HOME"]) / f"launcher-{len(list(Path(env['C2F_HOME']).glob('launcher-*')))}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:  # the test failed before stopping it
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def log_lines(env: dict[str, str]) -> list[str]:
    logs = sorted(Path(env["C2F_HOME"]).glob("launcher-*.log"))
    return logs[-1].read_text(errors="replace").splitlines()


def stack_pids(env: dict[str, str], launcher: subprocess.Popen[bytes]) -> dict[str, int]:
    state_file = Path(env["C2F_HOME"]) / "stack.json"

    def started() -> bool:
        assert launcher.poll() is None, "launcher exited early:\n" + "\n".join(log_lines(env)[-15:])
        return state_file.exists()

    wait_for(started, what="stack.json")
    children: dict[str, int] = json.loads(state_file.read_text())["children"]
    assert set(children) == {"kafka", *(f"mongo-{name}" for name in SERVICES), "smtp", *SERVICES}
    return children


def stop_and_check(launcher: subprocess.Popen[bytes], children: dict[str, int], signum: int) -> None:
    assert all(pid_exists(pid) for pid in children.values())
    launcher.send_signal(signum)
    assert launcher.wait(60) == 0
    still_running = {name: pid for name, pid in children.items() if pid_exists(pid)}
    assert still_running == {}


DEMO = Partnership.load(DEMO_DIR)
SEEN: dict[str, object] = {}


@pytest.mark.parametrize("launcher", [[]], indirect=True)
def test_up_seeds_the_demo_and_stops_everything_on_sigint(env, launcher) -> None:
    children = stack_pids(env, launcher)

    config = StackConfig.from_env(env)

    def running() -> bool:
        # What a person waits for: the printout that says where to look (after the demo's
        # meetings were requested, answered and scheduled).
        logs = sorted(Path(env["C2F_HOME"]).glob("launcher-*.log"))
        return "C2Future Match is running." in logs[-1].read_text(errors="replace")

    wait_for(running, what="the launcher's 'running' printout")

    def digests_sent() -> bool:
        return bool(of_kind(read_mail(Path(env["C2F_HOME"]) / "mail"), "suggestions_digest"))

    wait_for(digests_sent, what="the first suggestion digests")

    def seeded_and_settled() -> dict[str, int] | None:
        numbers = report(env)
        if not numbers or numbers["participants"] != sum(len(e["participants"]) for e in DEMO.events):
            return None
        if not asyncio.run(settled(config)):
            return None
        # Every e-mail in the sink is counted by reporting (NotificationSent travels after it).
        return (
            numbers
            if numbers["notifications_sent"] == len(read_mail(Path(env["C2F_HOME"]) / "mail"))
            else None
        )

    wait_for(seeded_and_settled, what="demo seeded, every event consumed, every e-mail reported")
    numbers = report(env)
    assert numbers is not None
    assert numbers["match_suggestions"] > 0
    mail = read_mail(Path(env["C2F_HOME"]) / "mail")
    assert len(of_kind(mail, "registration_confirmed")) == numbers["participants"]
    assert of_kind(mail, "suggestions_digest") and of_kind(mail, "schedule_published")
    assert numbers["clusters"] == len(DEMO.clusters)
    assert numbers["companies"] == len(DEMO.companies)
    assert numbers["events"] == len(DEMO.events)
    assert numbers["agreements"] == len(DEMO.agreements)
    assert numbers["participants"] == sum(len(e["participants"]) for e in DEMO.events)
    # The demo's meetings, as `c2f up` said it played them: each suggested pair asked once.
    said = " ".join(line for line in log_lines(env) if "Demo meetings at" in line)
    accepted = sum(int(n) for n in re.findall(r"(\d+) accepted", said))
    declined = sum(int(n) for n in re.findall(r"(\d+) declined", said))
    assert (numbers["meetings_accepted"], numbers["meeting_requests"]) == (accepted, accepted + declined)
    assert numbers["meeting_requests"] == numbers["match_suggestions"]
    assert 0 < numbers["meetings_scheduled"] <= numbers["meetings_accepted"]
    assert len(read_mail(Path(env["C2F_HOME"]) / "mail")) == numbers["notifications_sent"]
    SEEN["report"] = numbers
    stop_and_check(launcher, children, signal.SIGINT)


class Stream:
    """Sign-ups to a new B2B event, one after another from a thread, retried as a client would
    while registration is away; it goes no further than `allow` lets it."""

    def __init__(self, config: StackConfig, people: int) -> None:
        self.config, self.people, self.run = config, people, uuid.uuid4().hex[:6]
        self.answered: list[int] = []
        self._allowed = 0
        self._moved = threading.Condition()

        async def setup() -> Brokerage:
            async with httpx.AsyncClient(
                base_url=config.service_url("registration"), headers=self._operator(), timeout=30
            ) as registration:
                return await brokerage(
                    registration,
                    self.run,
                    people,
                    name="Matrix",
                    country="BG",
                    city="Plovdiv",
                    timezone="Europe/Sofia",
                )

        self.scene = asyncio.run(setup())
        self.emails = [f"m{n}.{self.run}@example.org" for n in range(people)]
        self._thread = threading.Thread(target=self._sign_up_all, name="sign-ups", daemon=True)
        self._thread.start()

    def _operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.operator_token()}"}

    def allow(self, count: int) -> None:
        with self._moved:
            self._allowed = min(self.people, count)
            self._moved.notify_all()

    def _sign_up_all(self) -> None:
        url = f"{self.config.service_url('registration')}/events/{self.scene.event}/participants"
        with httpx.Client(headers=self._operator(), timeout=30) as client:
            for n in range(self.people):
                with self._moved:
                    while n >= self._allowed:
                        self._moved.wait()
                body = {
                    "company_id": self.scene.companies[n],
                    "attendee": {"name": f"M{n}", "email": self.emails[n], "language": "bg"},
                }
                while True:
                    try:
                        response = client.post(url, json=body)
                    except httpx.TransportError:
                        time.sleep(0.2)  # refused while registration restarts: a client tries again
                        continue
                    if response.status_code == 503:
                        time.sleep(0.2)
                        continue
                    # 409: an earlier try went through before its answer was lost.
                    assert response.status_code in (201, 409), response.text
                    break
                self.answered.append(n)

    def finish(self, within: float) -> None:
        self.allow(self.people)
        self._thread.join(within)
        assert not self._thread.is_alive(), f"the stream stopped at {len(self.answered)} of {self.people}"


def start_launcher(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = Path(env["C2F_HOME"]) / f"launcher-{len(list(Path(env['C2F_HOME']).glob('launcher-*')))}.log"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("c2f")), "up", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


MATRIX = ["registration", "matching", "notifications", "reporting", "kafka"]  # killed in turn
STREAM, EVERY = 44, 6  # sign-ups; one kill (and at last the Ctrl-C) after every EVERY answers


@pytest.mark.parametrize("launcher", [["--no-seed"]], indirect=True)
def test_data_survives_a_restart_and_no_kill_or_ctrl_c_mid_stream_loses_or_doubles_anything(
    env, launcher
) -> None:
    """The issue's matrix on one stack under `c2f up`: while sign-ups stream in, each service
    and the broker are killed in turn (SIGKILL) and started again by `c2f up`, then Ctrl-C and
    `c2f up` again, still mid-stream. Afterwards matching knows every sign-up, reporting counts
    each once, and each attendee got one confirmation, sent once. Then Ctrl-C, `c2f up` and at
    once `c2f rebuild reporting`: it replays every event again and the reports are unchanged."""
    if "report" not in SEEN:
        pytest.skip("needs the first launcher test")
    stack_pids(env, launcher)
    seeded: dict[str, int] = SEEN["report"]  # type: ignore[assignment]
    assert report(env) == seeded
    # Nothing is sent again after a restart.
    assert len(read_mail(Path(env["C2F_HOME"]) / "mail")) == seeded["notifications_sent"]

    config = StackConfig.from_env(env)
    state_file = Path(env["C2F_HOME"]) / "stack.json"
    stream = Stream(config, STREAM)
    for turn, name in enumerate(MATRIX, start=1):
        stream.allow(turn * EVERY + 3)  # it goes on (a few sign-ups) while the child is down
        wait_for(
            lambda turn=turn: len(stream.answered) >= turn * EVERY,
            within=120,
            what=f"{turn * EVERY} sign-ups",
        )
        before: dict[str, int] = json.loads(state_file.read_text())["children"]
        backs = sum(f"{name} is back" in line for line in log_lines(env))
        os.kill(before[name], signal.SIGKILL)  # as an OOM killer would

        def restarted(name: str = name, before: dict[str, int] = before) -> dict[str, int] | None:
            now: dict[str, int] = json.loads(state_file.read_text())["children"]
            return now if now[name] != before[name] else None

        again = wait_for(restarted, within=60, what=f"{name} started again")
        # Only the killed child was started again: the others ran on.
        assert {k: v for k, v in again.items() if k != name} == {k: v for k, v in before.items() if k != name}
        wait_for(
            lambda name=name, backs=backs: sum(f"{name} is back" in line for line in log_lines(env)) > backs,
            within=60,
            what=f"{name} back",
        )
        assert any(f"{name} stopped unexpectedly (exit code -9)" in line for line in log_lines(env))
    # The broker came back empty: registration's outbox noticed and published what it keeps again.
    wait_for(
        lambda: (
            httpx.get(f"{config.service_url('registration')}/readyz", timeout=5).json()["checks"][
                "broker_losses_recovered"
            ]
            >= 1
        ),
        within=60,
        what="the broker's loss noticed",
    )
    restarts = sum("started again (pid" in line for line in log_lines(env))

    # Ctrl-C mid-stream, and `c2f up` again on the same home.
    stop_at = (len(MATRIX) + 1) * EVERY
    stream.allow(stop_at + 3)
    wait_for(lambda: len(stream.answered) >= stop_at, within=120, what=f"{stop_at} sign-ups")
    stopped_at = len(stream.answered)  # the stop begins mid-stream
    stop_and_check(launcher, json.loads(state_file.read_text())["children"], signal.SIGINT)
    second = start_launcher(env, "--no-seed")
    try:
        stack_pids(env, second)
        stream.finish(within=240)
        assert stopped_at < STREAM, "the stream ended before the Ctrl-C: make it longer"

        def complete() -> dict[str, int] | None:
            numbers = report(env)
            if not numbers or numbers["participants"] != seeded["participants"] + STREAM:
                return None
            return numbers if asyncio.run(settled(config)) else None

        numbers = wait_for(complete, within=240, what="every sign-up reported, everything settled")
        assert numbers["companies"] == seeded["companies"] + STREAM
        assert numbers["dead_letters"] == 0

        async def matched() -> int:
            database = Databases(config)
            try:
                return await database["c2f_matching"]["participants"].count_documents(
                    {"event_id": stream.scene.event}
                )
            finally:
                await database.close()

        assert asyncio.run(matched()) == STREAM
        mail = read_mail(Path(env["C2F_HOME"]) / "mail")
        confirmations = Counter(
            (a.addr_spec, str(m["Message-ID"]))
            for m in of_kind(mail, "registration_confirmed")
            for a in m["To"].addresses
            if stream.run in a.addr_spec
        )
        assert sorted(to for to, _ in confirmations) == sorted(stream.emails)  # one message each
        doubled = sum(c - 1 for c in confirmations.values())
        # A mail the SMTP server accepted just before notifications was killed, not yet recorded,
        # goes again with the same Message-ID (at most one per sender: docs/reliability.md).
        assert doubled <= NotificationSettings().delivery_workers, confirmations
        print(
            f"kill matrix: {STREAM} sign-ups, {len(MATRIX)} kills ({', '.join(MATRIX)}) and a Ctrl-C "
            f"after {stopped_at}; {restarts} restarts by c2f up; lost 0; confirmations sent twice: {doubled}"
        )
        # Ctrl-C once more, and a rebuild at once: it waits for the services to publish again what
        # their outboxes keep, so it replays at least every event reporting had processed.
        processed = asyncio.run(inbox_size(config, "reporting"))
        stop_and_check(second, json.loads(state_file.read_text())["children"], signal.SIGINT)
    finally:
        if second.poll() is None:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    third = start_launcher(env, "--no-seed")
    try:
        stack_pids(env, third)
        rebuilt = subprocess.run(
            [str(Path(sys.executable).with_name("c2f")), "rebuild", "reporting"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        replayed = re.search(r"Rebuilt reporting: (\d+) events replayed", " ".join(rebuilt.stdout.split()))
        assert replayed is not None, rebuilt.stdout
        assert int(replayed.group(1)) >= processed > STREAM

        def rebuilt_and_settled() -> dict[str, int] | None:
            again = report(env)
            if not again or not asyncio.run(settled(config)):
                return None
            # Each e-mail counted once (a demo timer may have come due and sent one since).
            return (
                again
                if again["notifications_sent"] == len(read_mail(Path(env["C2F_HOME"]) / "mail"))
                else None
            )

        again = wait_for(rebuilt_and_settled, within=120, what="the rebuilt reports settled")
        assert {k: v for k, v in again.items() if k != "notifications_sent"} == {
            k: v for k, v in numbers.items() if k != "notifications_sent"
        }
        stop_and_check(third, json.loads(state_file.read_text())["children"], signal.SIGTERM)
    finally:
        if third.poll() is None:
            third.send_signal(signal.SIGTERM)
            third.wait(60)


async def inbox_size(config: StackConfig, service: str) -> int:
    database = Databases(config)
    try:
        return await database[f"c2f_{service}"]["processed_events"].count_documents({})
    finally:
        await database.close()


def test_up_starts_nothing_for_servers_it_is_given(infra, tmp_path) -> None:
    """With C2F_KAFKA_BOOTSTRAP, C2F_MONGO_URI and C2F_SMTP_HOST set, only the services start."""
    first = free_port_run(len(SERVICES))
    services = range(first, first + len(SERVICES))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("C2F_")},
        "C2F_HOME": str(tmp_path),
        "C2F_KAFKA_BOOTSTRAP": infra.config.kafka_bootstrap,
        "C2F_MONGO_URI": infra.config.scratch_mongo_uri,
        "C2F_SMTP_HOST": "127.0.0.1",
        "C2F_SMTP_PORT": str(infra.config.smtp_port),
        **{f"C2F_{name.upper()}_PORT": str(port) for name, port in zip(SERVICES, services, strict=True)},
    }
    with (tmp_path / "launcher.log").open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("c2f")), "up", "--no-seed"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        state_file = tmp_path / "stack.json"
        wait_for(lambda: state_file.exists() or process.poll() is not None, what="stack.json")
        assert process.poll() is None, (tmp_path / "launcher.log").read_text()
        state = json.loads(state_file.read_text())
        assert set(state["children"]) == set(SERVICES)
        assert state["kafka"] == infra.config.kafka_bootstrap
        stop_and_check(process, state["children"], signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
