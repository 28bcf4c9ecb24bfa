"""`make stop` on a detached `make run`: the supervisor stops the run in its order, the database last.

Before, `make stop` sent SIGTERM to every pid file in name order at once: the database (mongo.pid) went
down before the supervisor (supervisor.pid) was even told, while the services were still draining their
in-flight messages against it. Now the supervisor alone is signalled and waited for (it stops the
services, then the sandbox, then the database); only what is left after it (a crashed run's leftovers) is
signalled by `make stop` itself, the services before the database.

Stand-ins for the processes (each records the SIGTERM it gets, in order, in one file), with the run's
state in a folder of the test's own (LOCAL_VAR_DIR): no real run is touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Records its SIGTERM in the events file; the supervisor stand-in takes a while to stop (as the real one
# does while the services drain), then exits.
STAND_IN = """
import signal, sys, time
name, events, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(what):
    with open(events, "a") as out:
        out.write(f"{name} {what}\\n")
def term(*_):
    note("term")
    time.sleep(linger)
    note("exit")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
note("ready")
while True:
    time.sleep(0.1)
"""


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, subprocess.Popen[bytes]]]]:
    var, events = tmp_path / "var", tmp_path / "events"
    (var / "run").mkdir(parents=True)
    events.touch()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    yield var, events, procs
    for proc in procs.values():
        proc.kill()
        proc.wait(10)


def start(
    var: Path, events: Path, procs: dict[str, subprocess.Popen[bytes]], name: str, linger: float
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, name, str(events), str(linger)])
    procs[name] = proc
    (var / "run" / f"{name}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while f"{name} ready" not in events.read_text():
        assert time.monotonic() < deadline, f"{name} stand-in did not start"
        time.sleep(0.05)


def make_stop(var: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LOCAL_VAR_DIR": str(var)}
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "stop"], env=env, capture_output=True, text=True, timeout=120
    )


def terms(events: Path) -> list[str]:
    return [line for line in events.read_text().splitlines() if not line.endswith(" ready")]


def test_make_stop_waits_for_the_supervisor_and_stops_the_database_last(
    stand_ins: tuple[Path, Path, dict[str, subprocess.Popen[bytes]]],
) -> None:
    var, events, procs = stand_ins
    for name in ("codec", "gateway", "mongo", "sandbox"):
        start(var, events, procs, name, 0.0)
    start(var, events, procs, "supervisor", 1.0)

    stop = make_stop(var)

    assert stop.returncode == 0, stop.stderr
    # The supervisor first, and make waited for it to exit (it is a zombie of ours by then, not alive);
    # then what it left: the services and the sandbox, the database last.
    order = terms(events)
    assert order[:2] == ["supervisor term", "supervisor exit"], order
    assert order[-2:] == ["mongo term", "mongo exit"], order
    assert sorted(order[2:-2]) == sorted(
        f"{n} {w}" for n in ("codec", "gateway", "sandbox") for w in ("term", "exit")
    )
    assert list((var / "run").glob("*.pid")) == []


def test_make_stop_without_a_supervisor_stops_the_database_last(
    stand_ins: tuple[Path, Path, dict[str, subprocess.Popen[bytes]]],
) -> None:
    var, events, procs = stand_ins
    start(var, events, procs, "mongo", 0.0)
    start(var, events, procs, "notify", 0.5)  # after mongo in name order; drains for a while
    (var / "run" / "supervisor.pid").write_text("999999999")  # a crashed supervisor's stale file

    stop = make_stop(var)

    assert stop.returncode == 0, stop.stderr
    assert terms(events) == ["notify term", "notify exit", "mongo term", "mongo exit"]
    assert list((var / "run").glob("*.pid")) == []


def test_make_stop_with_nothing_running(tmp_path: Path) -> None:
    stop = make_stop(tmp_path / "var")
    assert stop.returncode == 0, stop.stderr
