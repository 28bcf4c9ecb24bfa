"""`make run`: start the whole system on this machine and stop it cleanly on Ctrl-C.

Starts the embedded MongoDB-wire server (nx-27017, data under var/) unless MONGO_URL is set, makes sure
RabbitMQ and libzbar are there (installing them with apt on a Debian/Ubuntu machine when run as root,
otherwise printing the command to run), then the gateway and every worker that exists, and prints the
URLs. Leftovers of a crashed run (recorded in var/run/*.pid) are stopped first, so a second run after
a crash starts cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
RUN = VAR / "run"
PY = sys.executable

# Gateway first; then each worker whose package can be run (has a __main__.py).
PORTS = {"gateway": 8080, "codec": 8181, "imaging": 8182, "matching": 8183, "notify": 8184}


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
            os.kill(pid, signal.SIGTERM)
            say(f"stopped leftover {pid_file.stem} (pid {pid}) from an earlier run")
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(*packages: str) -> None:
    say(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def ensure_zbar() -> None:
    if ctypes.util.find_library("zbar"):
        return
    if can_install():
        apt_install("libzbar0")
        return
    sys.exit("[run] libzbar0 is missing (the codec needs it). Run: sudo apt-get install -y libzbar0")


def ensure_rabbitmq(amqp_url: str) -> None:
    parsed = urlparse(amqp_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    if port_open(host, port):
        return
    if host not in ("127.0.0.1", "localhost"):
        sys.exit(f"[run] RabbitMQ at {host}:{port} is not reachable (AMQP_URL); start it and run again.")
    if shutil.which("rabbitmq-server") is None:
        if not can_install():
            sys.exit(
                "[run] RabbitMQ is not installed. Run: sudo apt-get install -y rabbitmq-server "
                "&& sudo rabbitmq-server -detached"
            )
        apt_install("rabbitmq-server")
    if not port_open(host, port):
        say("starting rabbitmq-server")
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
    deadline = time.monotonic() + 90
    while not port_open(host, port):
        if time.monotonic() > deadline:
            sys.exit("[run] RabbitMQ did not come up within 90 s; see /var/log/rabbitmq/")
        time.sleep(0.5)
    say(f"RabbitMQ is up on {host}:{port}")


def ensure_management_plugin(amqp_url: str) -> None:
    """The console dashboard's queue figures come from RabbitMQ's management API (docs/console.md)."""
    host = urlparse(amqp_url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost"):
        return  # a broker elsewhere is configured by whoever runs it (RABBITMQ_MANAGEMENT_URL)
    plugins = shutil.which("rabbitmq-plugins")
    if plugins is None:
        say(
            "rabbitmq-plugins not found: the console dashboard shows no queue figures until the "
            "management plugin is enabled (rabbitmq-plugins enable rabbitmq_management)"
        )
        return
    enabled = subprocess.run(
        [plugins, "-q", "is_enabled", "rabbitmq_management"], capture_output=True, timeout=60, check=False
    )
    if enabled.returncode == 0:
        return
    say("enabling the RabbitMQ management plugin (the console dashboard's queue figures)")
    done = subprocess.run(
        [plugins, "enable", "rabbitmq_management"], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        say(
            "could not enable rabbitmq_management (run as root: rabbitmq-plugins enable "
            f"rabbitmq_management): {done.stderr.strip()[:200]}"
        )


def dev_key(name: str, purpose: str) -> str:
    """A development key (32 random bytes, base64) made once under var/; never used in production."""
    path = VAR / name
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
        say(f"made a development {purpose} in {path.relative_to(ROOT)}")
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
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        (self.run_dir / f"{self.name}.pid").unlink(missing_ok=True)


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


async def main() -> int:
    VAR.mkdir(exist_ok=True)
    kill_leftovers()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("HTTP_HOST", "127.0.0.1")  # a development run is not reachable from the network
    env.setdefault("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    ensure_zbar()
    ensure_rabbitmq(env["AMQP_URL"])
    ensure_management_plugin(env["AMQP_URL"])
    env.setdefault("CODEC_CIPHER_KEY", dev_key("codec-cipher.key", "CHSI cipher key"))
    env.setdefault("GATEWAY_DATA_KEY", dev_key("gateway-data.key", "key for personal data at rest"))

    children: list[Child] = []
    mongo: Child | None = None
    if "MONGO_URL" not in env:
        port = int(env.get("LOCAL_MONGO_PORT", "27017"))
        if port_open("127.0.0.1", port):
            return _fail(f"port {port} is taken; set MONGO_URL to use that server, or LOCAL_MONGO_PORT")
        data = VAR / "mongo"
        data.mkdir(parents=True, exist_ok=True)
        exe = str(Path(PY).with_name("nx-27017"))
        mongo = Child(
            "mongo",
            [
                exe,
                "--data-dir",
                str(data),
                "-p",
                str(port),
                "--log-file",
                str(VAR / "mongo.log"),
                "--pid-file",
                str(VAR / "nx-27017.pid"),
            ],
            env,
            quiet=True,
        )
        await mongo.start()
        env["MONGO_URL"] = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline:
                return _fail("nx-27017 did not start; see var/mongo.log")
            await asyncio.sleep(0.2)
        say(f"embedded MongoDB-wire server (nx-27017) on 127.0.0.1:{port}, data in var/mongo")

    sandbox = wechat_sandbox(env)
    if sandbox is not None:
        await sandbox.start()
        say(f"WeChat sandbox on {env['WECHAT_API_BASE']} (login, phone, subscribe messages, WeChat Pay v3)")
    for name, port in PORTS.items():
        if not (ROOT / "services" / name / "__main__.py").exists():
            continue
        child_env = {**env, "HTTP_PORT": env.get(f"{name.upper()}_HTTP_PORT", str(port))}
        children.append(Child(name, [PY, "-m", f"services.{name}"], child_env))
    for child in children:
        await child.start()

    ready = await asyncio.gather(*(wait_ready(c.name, int(c.env["HTTP_PORT"])) for c in children))
    gateway_port = children[0].env["HTTP_PORT"]
    say("" if all(ready) else "some services are not ready; their output is above")
    say(f"gateway:   http://127.0.0.1:{gateway_port}/api/v1  (health /healthz, /readyz, /metrics)")
    say(
        f"console:   http://127.0.0.1:{gateway_port}/console/  (first operator: .venv/bin/python -m "
        "services.gateway.console.cli create-operator --email EMAIL --role admin)"
    )
    for child in children[1:]:
        say(f"{child.name + ':':<10} http://127.0.0.1:{child.env['HTTP_PORT']}/readyz  /metrics")
    say("RabbitMQ:  " + env["AMQP_URL"].replace("guest:guest@", "") + "   MongoDB: " + env["MONGO_URL"])
    say("press Ctrl-C to stop everything")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_supervise(children, stop))
    await stop.wait()
    watcher.cancel()
    say("stopping: services drain their in-flight messages first")
    await asyncio.gather(*(c.stop(timeout=35) for c in reversed(children)))
    if sandbox is not None:
        await sandbox.stop(timeout=5)
    if mongo is not None:
        await mongo.stop(timeout=10)
    say("stopped")
    return 0


async def _supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Restart a service that dies (as Kubernetes would), a few times, then give up loudly."""
    while not stop.is_set():
        await asyncio.sleep(1)
        for child in children:
            if child.proc is not None and child.proc.returncode is not None and not stop.is_set():
                if child.restarts >= 5:
                    say(f"{child.name} keeps dying (exit {child.proc.returncode}); stopping everything")
                    stop.set()
                    return
                child.restarts += 1
                say(f"{child.name} exited with {child.proc.returncode}; restarting ({child.restarts}/5)")
                await child.start()


def _fail(message: str) -> int:
    say(message)
    kill_leftovers()
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
