"""`c2f up`'s supervision, with small fakes of a stack and its children and a clock of our own:
a dead child comes back after a pause that doubles, the others are left alone, and one that
keeps crashing is given up on."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack
from c2f_cli.supervisor import MAX_CRASHES, WINDOW_S, GaveUp, Supervisor


@dataclass
class FakeProcess:
    returncode: int | None = None


@dataclass
class FakeChild:
    name: str
    generation: int = 0
    process: FakeProcess = field(default_factory=FakeProcess)
    log: Path = Path("/tmp/fake.log")
    pid: int = 1000

    def alive(self) -> bool:
        return self.process.returncode is None

    def respawn(self) -> "FakeChild":
        return FakeChild(self.name, self.generation + 1, pid=self.pid + 1)

    def die(self, code: int = -9) -> None:
        self.process.returncode = code

    def tail(self) -> str:
        return "the last lines"


class FakeStack:
    def __init__(self, names: list[str]) -> None:
        self.config = StackConfig.on_free_ports(Path("/tmp/unused"))
        self.children = [FakeChild(n) for n in names]
        self.states_written = 0

    def write_state(self) -> None:
        self.states_written += 1

    def child(self, name: str) -> FakeChild:
        return next(c for c in self.children if c.name == name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervised(names: list[str]) -> tuple[FakeStack, Supervisor, Clock, list[str]]:
    stack, clock = FakeStack(names), Clock()
    said: list[str] = []
    supervisor = Supervisor(cast(Stack, stack), say=said.append, clock=clock)
    supervisor._ready = lambda name: True  # type: ignore[method-assign]
    return stack, supervisor, clock, said


def test_a_dead_child_is_started_again_after_a_pause_and_the_others_are_left_alone() -> None:
    stack, supervisor, clock, said = supervised(["kafka", "mongo", "matching"])
    kafka, mongo = stack.child("kafka"), stack.child("mongo")
    stack.child("matching").die()
    supervisor.check()
    assert stack.child("matching").generation == 0, "not before the pause"
    assert "matching stopped unexpectedly (exit code -9)" in said[0]
    clock.now += 0.6
    supervisor.check()
    assert stack.child("matching").generation == 1 and stack.states_written == 1
    assert stack.child("kafka") is kafka and stack.child("mongo") is mongo
    assert said[-2:] == ["matching started again (pid 1001)", "matching is back"]


def test_pauses_double_and_a_child_that_keeps_crashing_is_given_up_on() -> None:
    stack, supervisor, clock, _ = supervised(["matching"])
    pauses: list[float] = []
    with pytest.raises(GaveUp, match=f"matching stopped {MAX_CRASHES} times"):
        for _ in range(10):
            stack.child("matching").die()
            supervisor.check()
            started = clock.now
            while stack.child("matching").alive() is False:
                clock.now += 0.25
                supervisor.check()
            pauses.append(clock.now - started)
    assert pauses == pytest.approx([0.5, 1.0, 2.0, 4.0])


def test_crashes_far_apart_are_not_held_against_a_child() -> None:
    stack, supervisor, clock, _ = supervised(["reporting"])
    for _ in range(3 * MAX_CRASHES):
        stack.child("reporting").die()
        supervisor.check()
        clock.now += WINDOW_S / 2
        supervisor.check()
    assert stack.child("reporting").alive() and supervisor.restarted == 3 * MAX_CRASHES
