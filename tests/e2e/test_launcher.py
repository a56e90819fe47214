"""`c2f up`, the launcher behind `make up`: starts everything, seeds the demo,
keeps data across restarts, starts a killed process again, and stops every process it
started on SIGINT and SIGTERM."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.processes import free_port
from c2f_cli.seed import DEMO_DIR, Partnership
from tests.support import of_kind, read_mail, settled

# `c2f up` seeds the demo and plays its meetings: minutes on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ports = {f"C2F_{name.upper()}_PORT": str(free_port()) for name in SERVICES}
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("C2F_")},
        "C2F_HOME": str(tmp_path_factory.mktemp("c2f-home")),
        "C2F_KAFKA_PORT": str(free_port()),
        "C2F_MONGO_PORT": str(free_port()),
        "C2F_SMTP_PORT": str(free_port()),
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
        assert launcher.poll() is None, "launcher exited early"
        return state_file.exists()

    wait_for(started, what="stack.json")
    children: dict[str, int] = json.loads(state_file.read_text())["children"]
    assert set(children) == {"kafka", "mongo", "smtp", *SERVICES}
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


@pytest.mark.parametrize("launcher", [["--no-seed"]], indirect=True)
def test_data_survives_a_restart_and_sigterm_stops_everything(env, launcher) -> None:
    if "report" not in SEEN:
        pytest.skip("needs the first launcher test")
    children = stack_pids(env, launcher)
    assert report(env) == SEEN["report"]
    # Nothing is sent again after a restart.
    assert len(read_mail(Path(env["C2F_HOME"]) / "mail")) == SEEN["report"]["notifications_sent"]  # type: ignore[index]

    # A service killed as an OOM killer would: `c2f up` starts it again, the others run on.
    os.kill(children["reporting"], signal.SIGKILL)
    state_file = Path(env["C2F_HOME"]) / "stack.json"

    def restarted() -> dict[str, int] | None:
        now: dict[str, int] = json.loads(state_file.read_text())["children"]
        return now if now["reporting"] != children["reporting"] else None

    again = wait_for(restarted, within=60, what="reporting started again")
    assert {k: v for k, v in again.items() if k != "reporting"} == {
        k: v for k, v in children.items() if k != "reporting"
    }
    wait_for(lambda: any("reporting is back" in line for line in log_lines(env)), within=60, what="back")
    assert report(env) == SEEN["report"]
    assert any("reporting stopped unexpectedly (exit code -9)" in line for line in log_lines(env))
    stop_and_check(launcher, again, signal.SIGTERM)


def test_up_starts_nothing_for_servers_it_is_given(infra, tmp_path) -> None:
    """With C2F_KAFKA_BOOTSTRAP, C2F_MONGO_URI and C2F_SMTP_HOST set, only the services start."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("C2F_")},
        "C2F_HOME": str(tmp_path),
        "C2F_KAFKA_BOOTSTRAP": infra.config.kafka_bootstrap,
        "C2F_MONGO_URI": infra.config.mongo_uri,
        "C2F_SMTP_HOST": "127.0.0.1",
        "C2F_SMTP_PORT": str(infra.config.smtp_port),
        **{f"C2F_{name.upper()}_PORT": str(free_port()) for name in SERVICES},
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
