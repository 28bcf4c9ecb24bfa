"""`make run`'s supervisor (deploy/local/run.py), started for real in a subprocess.

- make_stop_is_not_undone: a service that exits cleanly (SIGTERM, `make stop`) is not restarted; `make
  stop` ends the whole run (issue 13.11: "exited with 0; restarting").
- ctrl_c_during_startup_retries: with the database down, the services sit in their start-up retry loop;
  Ctrl-C still stops everything within the drain time (it used to hang).
- the gateway's /readyz and /metrics are on its ops port (GATEWAY_OPS_PORT), not the public one, as
  deployed (it used to serve them on the public port in `make run`, and an exported OPS_PORT was given to
  every service, which then fought over it while the supervisor polled the public port for /readyz).

The run's state (pid files, keys, sandbox keys) goes to a folder of the test's own (LOCAL_VAR_DIR) and
every port is a free one, so a `make run` of the developer's on the same machine is never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from shared.runtime import Runtime, StartupAborted
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.timeout(300)

DRAIN_S = 10  # DRAIN_TIMEOUT_S for the services and the supervisor
GRACE_S = 5  # deploy/local/run.py EXIT_GRACE_S


class Run:
    """One `python deploy/local/run.py` with its output in a file."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        home.mkdir(parents=True)
        self.var = home / "var"
        self.output = home / "run.log"
        self.env = {
            **os.environ,
            "LOCAL_VAR_DIR": str(self.var),
            "LOCAL_SERVICES": "gateway,codec",
            "GATEWAY_HTTP_PORT": str(free_port()),
            "GATEWAY_OPS_PORT": str(free_port()),
            "CODEC_HTTP_PORT": str(free_port()),
            "SANDBOX_PORT": str(free_port()),
            "DRAIN_TIMEOUT_S": str(DRAIN_S),
            # The supervision is under test here, not the system packages (tests/unit/test_system_deps.py).
            "SYSTEM_DEPS_BROKER": "0",
            **env,
        }
        with self.output.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "deploy" / "local" / "run.py")],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # as in a terminal: Ctrl-C reaches the supervisor only
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, what: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"run.py exited ({self.proc.returncode}) before: {message}\n{self.text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout:.0f} s: {message}\n{self.text()[-4000:]}")
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in (self.var / "run").glob("*.pid")}

    def close(self) -> None:
        """Whatever the test left running (only when it failed half-way)."""
        for pid in [self.proc.pid, *self.pids().values()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def gone_within(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Run]]:
    runs: list[Run] = []

    def start(env: dict[str, str]) -> Run:
        run = Run(tmp_path / f"run{len(runs)}", env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_make_stop_is_not_undone(start_run: Callable[[dict[str, str]], Run], env: dict[str, str]) -> None:
    # An OPS_PORT exported in the shell is the gateway's alone, never every service's.
    run = start_run(
        {
            "MONGO_URL": env["MONGO_URL"],
            "MONGO_DB": env["MONGO_DB"],
            "AMQP_URL": env["AMQP_URL"],
            "OPS_PORT": str(free_port()),
        }
    )
    run.wait_for(lambda: "press Ctrl-C to stop everything" in run.text(), 180, "the run is up")
    assert "some services are not ready" not in run.text()
    pids = run.pids()
    assert {"gateway", "codec", "sandbox", "supervisor"} <= set(pids), pids

    # The gateway's probes and metrics on its ops port only; the public port keeps /healthz.
    public = f"http://127.0.0.1:{run.env['GATEWAY_HTTP_PORT']}"
    ops = f"http://127.0.0.1:{run.env['GATEWAY_OPS_PORT']}"
    assert (http_status(f"{ops}/readyz"), http_status(f"{ops}/metrics")) == (200, 200)
    assert (http_status(f"{public}/readyz"), http_status(f"{public}/metrics")) == (404, 404)
    assert http_status(f"{public}/healthz") == 200
    assert f"{ops}/readyz" in run.text()
    # A worker keeps its probes on its own HTTP port (no public traffic there).
    assert http_status(f"http://127.0.0.1:{run.env['CODEC_HTTP_PORT']}/readyz") == 200

    # One service stopped on its own (SIGTERM: it drains and exits 0): it stays stopped, the rest runs.
    os.kill(pids["codec"], signal.SIGTERM)
    run.wait_for(
        lambda: "codec exited cleanly; not restarting it" in run.text(), 60, "codec's clean exit seen"
    )
    time.sleep(2)  # several supervision rounds
    assert not alive(pids["codec"])
    assert "restarting" not in run.text().replace("not restarting", "")
    assert alive(pids["gateway"]) and alive(pids["sandbox"]) and run.proc.poll() is None
    assert "codec" not in run.pids()

    # make stop: the whole run ends, nothing is restarted, no pid file is left.
    stop = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "stop"], env=run.env, capture_output=True, text=True, timeout=60
    )
    assert stop.returncode == 0, stop.stderr
    assert run.proc.wait(DRAIN_S + GRACE_S + 30) == 0
    assert gone_within([pids["gateway"], pids["sandbox"]], 10)
    text = run.text()
    assert "restarting" not in text.replace("not restarting", "")
    assert "[run] stopped" in text
    assert run.pids() == {}


def test_ctrl_c_during_startup_retries(
    start_run: Callable[[dict[str, str]], Run], env: dict[str, str]
) -> None:
    closed = free_port()  # nothing listens there: the database is down
    run = start_run(
        {
            "MONGO_URL": f"mongodb://127.0.0.1:{closed}/?directConnection=true",
            "MONGO_TIMEOUT_MS": "500",
            "AMQP_URL": env["AMQP_URL"],
        }
    )
    retrying = re.compile(r"^(gateway|codec) +\|.*retrying start-up", re.M)
    run.wait_for(
        lambda: {m.group(1) for m in retrying.finditer(run.text())} == {"gateway", "codec"},
        120,
        "both services retrying their start-up",
    )
    pids = run.pids()
    assert "press Ctrl-C" not in run.text()  # still starting: the moment that used to hang

    started = time.monotonic()
    os.kill(run.proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
    assert run.proc.wait(DRAIN_S + GRACE_S + 30) == 0
    elapsed = time.monotonic() - started
    children = [pids[n] for n in ("gateway", "codec", "sandbox")]
    assert gone_within(children, 5)
    text = run.text()
    # Each service left its retry loop on the SIGTERM by itself (none had to be killed), exit 0.
    for name in ("gateway", "codec"):
        assert re.search(rf"^{name} +\|.*stop requested during start-up", text, re.M), text[-4000:]
    assert "did not stop within" not in text
    assert "restarting" not in text.replace("not restarting", "")
    assert elapsed < DRAIN_S + GRACE_S + 30
    assert run.pids() == {}


async def test_runtime_start_gives_way_to_a_stop(env: dict[str, str]) -> None:
    """What the services do on that SIGTERM: the start-up retries end, exit code 0, nothing left open."""
    closed = free_port()
    settings = Settings(
        mongo_url=f"mongodb://127.0.0.1:{closed}/?directConnection=true",
        mongo_timeout_ms=300,
        amqp_url=env["AMQP_URL"],
        http_port=0,
    )
    runtime = Runtime(settings)
    started = time.monotonic()
    # After a few failed attempts. (Not a separate task: asyncio lets a SystemExit out of a task
    # straight through the event loop, which is what ends the real process.)
    asyncio.get_running_loop().call_later(1.5, runtime.request_stop)
    with pytest.raises(StartupAborted) as aborted:
        async with asyncio.timeout(10):
            await runtime.start()
    assert time.monotonic() - started >= 1.5
    assert aborted.value.code == 0
    assert not runtime.bus.connected
