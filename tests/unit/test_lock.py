"""The lock files: every third-party package pinned with the sha256 of its files, and in step
with what the projects declare and what the environments need.

- requirements/lock.txt is what `make install` puts in .venv (pip --require-hashes), and
  requirements/lock-<service>.txt what each image gets (deploy/Dockerfile).
- Each names every dependency a pyproject.toml or dev.txt declares, and every package those
  need in turn (read from the installed packages' metadata, extras and markers included), at
  the version installed here.
- constraints.txt, written by `make lock`, holds the same versions without the hashes.
"""

import importlib.metadata
import re
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
SERVICES = ("registration", "matching", "notifications", "reporting")
PROJECTS = [ROOT / "shared", *(ROOT / "services" / s for s in SERVICES), ROOT / "cli"]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)$")


def locked(path: Path) -> dict[str, str]:
    """A lock file's packages and versions; every entry must be name==version with hashes."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # join the continuation lines
    entries: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = ENTRY.match(line)
        assert found, f"{path.name}: not name==version with sha256 hashes: {line[:80]}"
        entries[canonicalize_name(found.group(1))] = found.group(2)
    return entries


def declared(project: Path) -> list[Requirement]:
    data = tomllib.loads((project / "pyproject.toml").read_text())
    return [Requirement(r) for r in data["project"]["dependencies"]]


def dev_tools() -> list[Requirement]:
    lines = (REQUIREMENTS / "dev.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def needed(roots: Iterable[Requirement]) -> set[str]:
    """Every distribution the roots need, from the installed packages' metadata: requirements
    of the extras asked for, with markers evaluated for this interpreter."""
    todo = list(roots)
    seen: set[tuple[str, str]] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        for extra in {"", *requirement.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in importlib.metadata.distribution(name).requires or []:
                dependency = Requirement(line)
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra}):
                    todo.append(dependency)
    return {name for name, _ in seen}


def third_party(names: Iterable[str]) -> set[str]:
    return {name for name in names if not name.startswith("c2f-")}


LOCK = REQUIREMENTS / "lock.txt"


def test_every_locked_package_has_hashes(tmp_path: Path) -> None:
    for path in [LOCK, *(REQUIREMENTS / f"lock-{s}.txt" for s in SERVICES)]:
        assert len(locked(path)) >= 50, path  # and locked() refused any entry without a hash
    bare = tmp_path / "lock.txt"  # as it refuses a pin without one
    bare.write_text(LOCK.read_text() + "\nleftover==1.0\n")
    with pytest.raises(AssertionError, match=re.escape("leftover==1.0")):
        locked(bare)


def test_every_declared_dependency_is_locked_at_its_pinned_version() -> None:
    lock = locked(LOCK)
    roots = [r for project in PROJECTS for r in declared(project)] + dev_tools()
    for requirement in roots:
        name = canonicalize_name(requirement.name)
        if name.startswith("c2f-"):
            continue
        assert name in lock, f"{requirement} is declared but not locked: run make lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), (requirement, lock[name])
    # The build backend of the editable installs (--no-build-isolation) is locked too.
    build = {
        Requirement(r).name
        for r in tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["build-system"]["requires"]
    }
    assert {canonicalize_name(b) for b in build} <= lock.keys()


def test_the_lock_holds_everything_the_venv_needs_at_the_installed_versions() -> None:
    lock = locked(LOCK)
    roots = [Requirement(f"c2f-{p.name}") for p in PROJECTS] + dev_tools()
    need = third_party(needed(roots))
    assert len(need) >= 100
    assert need <= lock.keys(), f"needed but not locked: {sorted(need - lock.keys())}"
    for name in need:
        assert importlib.metadata.version(name) == lock[name], name


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_lock_holds_what_its_service_needs(service: str) -> None:
    image = locked(REQUIREMENTS / f"lock-{service}.txt")
    need = third_party(needed([Requirement("c2f-shared"), Requirement(f"c2f-{service}")]))
    assert need <= image.keys(), f"needed but not locked: {sorted(need - image.keys())}"
    assert image.keys() - need <= {"setuptools", "wheel"}, "an image gets only what it runs on"
    lock = locked(LOCK)
    assert {name: lock[name] for name in image} == image  # the same versions as .venv


def test_constraints_hold_the_locked_versions() -> None:
    lines = (REQUIREMENTS / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert {canonicalize_name(name): version for name, version in pins.items()} == locked(LOCK)


def test_make_install_checks_every_hash_and_adds_our_packages_without_dependencies(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-n", "-B", f"VENV={tmp_path}/venv", "install"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pip = [line for line in result.stdout.splitlines() if "-m pip install" in line]
    assert len(pip) == 2, result.stdout
    assert "--require-hashes --no-deps -r requirements/lock.txt" in pip[0]
    assert "--no-deps" in pip[1] and "-r " not in pip[1] and "-c " not in pip[1]
    assert set(re.findall(r"-e (\S+)", pip[1])) == {str(p.relative_to(ROOT)) for p in PROJECTS}
    assert f"{tmp_path}/venv/bin/python -m pip check" in result.stdout  # a missing lock entry stops it
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "COPY requirements/lock-${SERVICE}.txt requirements/lock.txt" in dockerfile
    assert "--require-hashes --no-deps -r requirements/lock.txt" in dockerfile
