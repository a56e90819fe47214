"""Keeping the local stack up: a child of `c2f up` that dies (a crash, an OOM kill, `kill -9`) is
started again after a pause that doubles with each crash, while the others keep running; one
that keeps crashing is given up on, with its log, and the platform stops as before.

The broker and the database are children like the others. The database keeps its data on disk;
the embedded broker comes back empty, and the services publish again what their outboxes still
hold (see docs/reliability.md).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from c2f_cli.processes import Child
from c2f_cli.stack import Stack

MAX_CRASHES = 5  # within WINDOW_S: then it is given up on
WINDOW_S = 120.0
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 30.0


class GaveUp(Exception):
    def __init__(self, child: Child, crashes: int) -> None:
        super().__init__(f"{child.name} stopped {crashes} times within {WINDOW_S:.0f} s")
        self.child = child


@dataclass
class _Restart:
    due: float
    crashed: Child


@dataclass
class Supervisor:
    stack: Stack
    say: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    _crashes: dict[str, list[float]] = field(default_factory=dict)
    _restarts: dict[str, _Restart] = field(default_factory=dict)
    _coming_back: set[str] = field(default_factory=set)  # restarted services not ready yet
    restarted: int = 0

    def check(self) -> None:
        """Notice children that died, restart those whose pause is over, tell who is back.
        Raises GaveUp for a child that crashed MAX_CRASHES times within WINDOW_S."""
        now = self.clock()
        for child in list(self.stack.children):
            if child.alive() or child.name in self._restarts:
                continue
            crashes = [t for t in self._crashes.get(child.name, []) if now - t < WINDOW_S] + [now]
            self._crashes[child.name] = crashes
            if len(crashes) >= MAX_CRASHES:
                raise GaveUp(child, len(crashes))
            pause = min(LONGEST_PAUSE_S, FIRST_PAUSE_S * 2 ** (len(crashes) - 1))
            self.say(
                f"{child.name} stopped unexpectedly (exit code {child.process.returncode}); "
                f"starting it again in {pause:.1f} s (crash {len(crashes)} of {MAX_CRASHES - 1} allowed "
                f"within {WINDOW_S:.0f} s); its log: {child.log}"
            )
            self._restarts[child.name] = _Restart(now + pause, child)
        for name, restart in list(self._restarts.items()):
            if now < restart.due:
                continue
            del self._restarts[name]
            fresh = restart.crashed.respawn()
            children = self.stack.children
            children[children.index(restart.crashed)] = fresh
            self.stack.write_state()
            self.restarted += 1
            self._coming_back.add(name)
            self.say(f"{name} started again (pid {fresh.pid})")
        for name in list(self._coming_back):
            if self._ready(name):
                self._coming_back.discard(name)
                self.say(f"{name} is back")

    def _ready(self, name: str) -> bool:
        config = self.stack.config
        if name not in config.service_ports:
            return True  # the servers: listening again is enough, and the services tell the rest
        try:
            return httpx.get(f"{config.service_url(name)}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
