"""`make run`: start the whole system on this machine and stop it cleanly on Ctrl-C.

Makes sure the system packages and RabbitMQ are there (deploy/local/system-deps.sh: installed with apt
on a Debian/Ubuntu machine when run as root, otherwise it prints the command to run), starts the
embedded MongoDB-wire server (nx-27017, data under var/) unless MONGO_URL is set, then the gateway and
every worker that exists, and prints the URLs. Leftovers of a crashed run (recorded in var/run/*.pid)
are stopped first, so a second run after a crash starts cleanly.

Supervision: a service that crashes is restarted (five times at most); one that exits cleanly (exit 0:
`make stop`, or a SIGTERM from elsewhere) is not, and when every service has exited cleanly the rest
(sandbox, database) is stopped too. Ctrl-C (or SIGTERM to this process) works at any moment, start-up
included: the services get SIGTERM together, have `DRAIN_TIMEOUT_S` (30 s) to finish, and whatever is
left after that is killed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
# LOCAL_VAR_DIR moves the run's state (pid files, data, development keys) elsewhere, e.g. for a test.
VAR = Path(os.environ.get("LOCAL_VAR_DIR") or ROOT / "var")
RUN = VAR / "run"
PY = sys.executable
SYSTEM_DEPS = ROOT / "deploy" / "local" / "system-deps.sh"

# Gateway first; then each worker whose package can be run (has a __main__.py).
T = TypeVar("T")

PORTS = {"gateway": 8080, "codec": 8181, "imaging": 8182, "matching": 8183, "notify": 8184}
# The gateway's /readyz and /metrics on a port of their own, as deployed (OPS_PORT, 9090 in the manifests):
# the public port keeps just /healthz. The workers serve nothing public, so their probes stay on HTTP_PORT.
OPS_PORTS = {"gateway": 9090}


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def kill_leftovers(run_dir: Path = RUN) -> None:
    """Stop whatever a previous, crashed `make run` left behind (by its pid files)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # Services before the database, so they do not spend their last seconds on lost connections.
    for pid_file in sorted(run_dir.glob("*.pid"), key=lambda p: p.stem == "mongo"):
        try:
            pid = int(pid_file.read_text().strip())
            if pid == os.getpid():
                continue  # our own supervisor.pid (a failed start cleaning up after itself)
            os.kill(pid, signal.SIGTERM)
            say(f"stopped leftover {pid_file.stem} (pid {pid}) from an earlier run")
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)


def ensure_system_deps(*, broker: bool = True) -> None:
    """deploy/local/system-deps.sh, the one script `make run`, `make test` and CI use: libzbar0, the CJK
    font and (with `broker`) RabbitMQ running with its management plugin, installed and started as
    root on Debian/Ubuntu; otherwise it prints the exact command and we stop."""
    env = {**os.environ} if broker else {**os.environ, "SYSTEM_DEPS_BROKER": "0"}
    if subprocess.run(["bash", str(SYSTEM_DEPS), "run"], env=env, check=False).returncode != 0:
        sys.exit(1)


def ensure_zbar() -> None:
    """The packages without the broker (for a caller that starts its own broker, such as make load)."""
    ensure_system_deps(broker=False)


def ensure_rabbitmq(amqp_url: str) -> None:
    """The broker must answer: a local one was started by system-deps.sh, another one is the user's."""
    parsed = urlparse(amqp_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    if not port_open(host, port):
        sys.exit(f"[run] RabbitMQ at {host}:{port} is not reachable (AMQP_URL); start it and run again.")


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the repository when it is inside."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def dev_key(name: str, purpose: str) -> str:
    """A development key (32 random bytes, base64) made once under var/; never used in production."""
    path = VAR / name
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
        say(f"made a development {purpose} in {shown(path)}")
    return path.read_text().strip()


def wechat_sandbox(env: dict[str, str]) -> Child | None:
    """Without real WeChat credentials, the project's sandbox plays WeChat and WeChat Pay."""
    if env.get("WECHAT_APPID"):
        say("using the configured WeChat and WeChat Pay (WECHAT_APPID is set)")
        return None
    from shared.wechat.keys import client_env, load_or_create_keyset, sandbox_env

    key_path = VAR / "wechat"
    keyset = load_or_create_keyset(key_path)
    port = int(env.get("SANDBOX_PORT", "8090"))
    base = f"http://127.0.0.1:{port}"
    gateway = f"http://127.0.0.1:{env.get('GATEWAY_HTTP_PORT', PORTS['gateway'])}"
    env.update(
        client_env(
            keyset,
            api_base=base,
            notify_url=f"{gateway}/api/v1/pay/notify",
            refund_notify_url=f"{gateway}/api/v1/pay/notify",
        )
    )
    return Child("sandbox", [PY, "-m", "sandbox.wechat"], {**env, **sandbox_env(key_path, port=port)})


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    quiet: bool = False
    restarts: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set once the child exited cleanly (exit 0) or we stopped it: never restarted after that.
    finished: bool = False
    # Where the pid file goes (`make load` keeps its own, apart from `make run`'s), and, when set, a
    # file that takes the child's output instead of this terminal.
    run_dir: Path = RUN
    log_path: Path | None = None

    async def start(self) -> None:
        # A quiet child (the database) logs to its own file; services are shown here, prefixed.
        output: int | TextIO = asyncio.subprocess.DEVNULL if self.quiet else asyncio.subprocess.PIPE
        if self.log_path is not None:
            output = self.log_path.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=ROOT,
            env=self.env,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT if not self.quiet else asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        if not isinstance(output, int):
            output.close()  # the child holds its own copy
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / f"{self.name}.pid").write_text(str(self.proc.pid))
        if not self.quiet and self.log_path is None:
            self.tasks = [asyncio.create_task(self._pipe())]

    async def _pipe(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        width = max(len(n) for n in PORTS) + 2
        async for line in self.proc.stdout:
            print(f"{self.name:<{width}}| {line.decode(errors='replace').rstrip()}", flush=True)

    async def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        self.finished = True
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                say(f"{self.name} did not stop within {timeout:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        (self.run_dir / f"{self.name}.pid").unlink(missing_ok=True)


def drain_timeout() -> float:
    """The services' own drain time (DRAIN_TIMEOUT_S, docs/configuration.md): what a stop waits for."""
    try:
        return max(0.0, float(os.environ.get("DRAIN_TIMEOUT_S", "30")))
    except ValueError:
        return 30.0


# After the drain time, a little for the process to close its connections and exit.
EXIT_GRACE_S = 5.0


async def until(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """`work`, unless `stop` is set first (then `work` is cancelled and None returned)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def wait_ready(name: str, port: int, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{port}/readyz", timeout=2
            ) as r:
                if r.status == 200:
                    return True
        except Exception:  # not up yet
            await asyncio.sleep(0.5)
    say(f"{name} did not become ready within {timeout:.0f} s")
    return False


def wanted_services() -> list[str]:
    """Every service that can be run (has a __main__.py), or those named in LOCAL_SERVICES (a comma list)."""
    names = [n for n in PORTS if (ROOT / "services" / n / "__main__.py").exists()]
    chosen = os.environ.get("LOCAL_SERVICES", "").strip()
    if chosen:
        names = [n for n in names if n in {c.strip() for c in chosen.split(",")}]
    return names


def prepare() -> dict[str, str]:
    """Before anything starts: leftovers stopped, system packages and the broker there, keys made."""
    VAR.mkdir(parents=True, exist_ok=True)
    kill_leftovers()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("HTTP_HOST", "127.0.0.1")  # a development run is not reachable from the network
    env.setdefault("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    ensure_system_deps()
    ensure_rabbitmq(env["AMQP_URL"])
    env.setdefault("CODEC_CIPHER_KEY", dev_key("codec-cipher.key", "CHSI cipher key"))
    env.setdefault("GATEWAY_DATA_KEY", dev_key("gateway-data.key", "key for personal data at rest"))
    (RUN / "supervisor.pid").write_text(str(os.getpid()))
    return env


async def main(env: dict[str, str]) -> int:
    # Ctrl-C and SIGTERM are ours from here on: every wait below gives way to them.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    children: list[Child] = []
    others: list[Child] = []  # the database and the sandbox: stopped after the services
    try:
        if "MONGO_URL" not in env:
            port = int(env.get("LOCAL_MONGO_PORT", "27017"))
            if port_open("127.0.0.1", port):
                return _fail(f"port {port} is taken; set MONGO_URL to use that server, or LOCAL_MONGO_PORT")
            mongo = mongo_child(env, port)
            others.append(mongo)
            await mongo.start()
            env["MONGO_URL"] = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            if not await until(stop, wait_port(port, 30)):
                return 0 if stop.is_set() else _fail("nx-27017 did not start; see var/mongo.log")
            say(
                f"embedded MongoDB-wire server (nx-27017) on 127.0.0.1:{port}, data in {shown(VAR / 'mongo')}"
            )

        sandbox = wechat_sandbox(env)
        if sandbox is not None:
            others.insert(0, sandbox)
            await sandbox.start()
            say(
                f"WeChat sandbox on {env['WECHAT_API_BASE']} (login, phone, subscribe messages, WeChat Pay v3)"
            )
        for name in wanted_services():
            children.append(Child(name, [PY, "-m", f"services.{name}"], service_env(name, env)))
        for child in children:
            await child.start()
        watcher = asyncio.create_task(_supervise(children, stop))

        ready = await until(stop, asyncio.gather(*(wait_ready(c.name, ops_port(c.env)) for c in children)))
        if ready is not None:
            announce(children, env, all(ready))
        await stop.wait()
        watcher.cancel()
    finally:
        await stop_all(children, others)
    return 0


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """A service's environment: its HTTP port, and its ops port where it has one (NAME_OPS_PORT; for the
    gateway also an exported OPS_PORT, else 9090). An OPS_PORT exported in the shell is never handed to
    every service: they would all try to bind it."""
    child = {**env, "HTTP_PORT": env.get(f"{name.upper()}_HTTP_PORT", str(PORTS[name]))}
    child.pop("OPS_PORT", None)
    ops = env.get(f"{name.upper()}_OPS_PORT") or (env.get("OPS_PORT") if name in OPS_PORTS else None)
    if ops or name in OPS_PORTS:
        child["OPS_PORT"] = ops or str(OPS_PORTS[name])
    return child


def ops_port(env: dict[str, str]) -> int:
    """Where a service answers /readyz and /metrics: OPS_PORT when it has one, else its HTTP port."""
    return int(env.get("OPS_PORT") or env["HTTP_PORT"])


def announce(children: list[Child], env: dict[str, str], all_ready: bool) -> None:
    say("" if all_ready else "some services are not ready; their output is above")
    gateway = next((c for c in children if c.name == "gateway"), None)
    if gateway is not None:
        port = gateway.env["HTTP_PORT"]
        say(f"gateway:   http://127.0.0.1:{port}/api/v1  (health /healthz)")
        say(f"  ops:     http://127.0.0.1:{ops_port(gateway.env)}/readyz  /metrics  (not on the public port)")
        say(
            f"console:   http://127.0.0.1:{port}/console/  (first operator: .venv/bin/python -m "
            "services.gateway.console.cli create-operator --email EMAIL --role admin)"
        )
    for child in children:
        if child is not gateway:
            say(f"{child.name + ':':<10} http://127.0.0.1:{ops_port(child.env)}/readyz  /metrics")
    say("RabbitMQ:  " + env["AMQP_URL"].replace("guest:guest@", "") + "   MongoDB: " + env["MONGO_URL"])
    say("press Ctrl-C to stop everything")


async def stop_all(children: list[Child], others: list[Child]) -> None:
    """The services together (each drains its in-flight messages), then the sandbox, then the database."""
    running = [c for c in children if c.proc is not None and c.proc.returncode is None]
    if running:
        say(f"stopping: services drain their in-flight messages first (up to {drain_timeout():.0f} s)")
    await asyncio.gather(*(c.stop(timeout=drain_timeout() + EXIT_GRACE_S) for c in children))
    for other in others:
        await other.stop(timeout=10)
    (RUN / "supervisor.pid").unlink(missing_ok=True)
    say("stopped")


def mongo_child(env: dict[str, str], port: int) -> Child:
    data = VAR / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    exe = str(Path(PY).with_name("nx-27017"))
    args = [exe, "--data-dir", str(data), "-p", str(port), "--log-file", str(VAR / "mongo.log")]
    return Child("mongo", [*args, "--pid-file", str(VAR / "nx-27017.pid")], env, quiet=True)


async def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def _supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Restart a service that crashes (as Kubernetes would), a few times, then give up loudly.

    A clean exit (0) is a deliberate stop (`make stop`, a SIGTERM): not restarted; once every service
    has stopped that way, everything else is stopped too.
    """
    while not stop.is_set():
        await asyncio.sleep(0.5)
        for child in children:
            if child.finished or child.proc is None or child.proc.returncode is None or stop.is_set():
                continue
            code = child.proc.returncode
            if code == 0:
                child.finished = True
                (child.run_dir / f"{child.name}.pid").unlink(missing_ok=True)
                say(f"{child.name} exited cleanly; not restarting it")
            elif child.restarts >= 5:
                say(f"{child.name} keeps dying (exit {code}); stopping everything")
                stop.set()
                return
            else:
                child.restarts += 1
                say(f"{child.name} exited with {code}; restarting ({child.restarts}/5)")
                await child.start()
        if children and all(c.finished for c in children):
            say("every service has stopped; stopping the rest")
            stop.set()
            return


def _fail(message: str) -> int:
    say(message)
    kill_leftovers()
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(prepare())))
