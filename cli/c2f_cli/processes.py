"""Starting and stopping the stack's child processes, and waiting until they answer.

Each child runs in its own session (so a terminal's Ctrl-C reaches only the
launcher, which then stops children in order) and, on Linux, is told by the
kernel to stop if the launcher itself dies.
"""

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: tuple[str, ...] = ()
    env: dict[str, str] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL what is left after `timeout`."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()

    def respawn(self) -> "Child":
        """The same process started again (same command, environment and log, appended to)."""
        return spawn(self.name, self.argv, self.log.parent, self.env)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Child(name=name, process=process, log=log, argv=tuple(argv), env=env)


class StartupFailed(RuntimeError):
    pass


def wait_for_port(child: Child, host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise StartupFailed(f"{child.name} exited with {child.process.returncode}:\n{child.tail()}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise StartupFailed(
        f"{child.name} did not listen on {host}:{port} within {timeout:.0f}s:\n{child.tail()}"
    )


def wait_until_ready(child: Child, url: str, timeout: float = 90.0) -> None:
    """Poll `url`/readyz until it answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise StartupFailed(f"{child.name} exited with {child.process.returncode}:\n{child.tail()}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=3)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.2)
    raise StartupFailed(f"{child.name} not ready within {timeout:.0f}s ({last}):\n{child.tail()}")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As servers do: connections of a process that just stopped (TIME_WAIT) don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports, below the range the system hands out to
    outgoing connections (Linux: 32768-60999), so that none of them is taken as a connection's
    own port between this check and the server binding it; and a run apart from what
    `free_port` returns (which is in that range)."""
    low, high = 20000, 32768
    while True:
        first = random.randrange(low, high - count)
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind((host, port))
            except OSError:
                continue
        return first
