"""The system `make load` drives: what `make run` starts, on ports and data of its own, piece by piece.

Started with deploy/local/run.py's own pieces (`Child`, `wait_ready`, `wechat_sandbox`, `dev_key`), plus a
RabbitMQ node of its own. Why a private node (`gradload@localhost`, AMQP 5673, management 15673, data under
`var/load/<name>/rabbit`): the fault run restarts the broker, and the system node on 5672 is shared (the
test suite creates a vhost per test on it, `make run` uses it); restarting it would break whatever else
runs on this machine. The same goes for the database: an nx-27017 of its own (port 27117, data under
`var/load/<name>/mongo`), and for the gateway, the workers and the WeChat sandbox (ports 8280-8290).

Each piece can be stopped, started, restarted or killed with SIGKILL on its own (the fault run does all
four); a killed worker is started again by `Stack.supervise` after a second, as Kubernetes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.net import free_port
from deploy.local import run as local

ROOT = local.ROOT
LOAD_VAR = local.VAR / "load"
WORKERS = ("codec", "imaging", "matching", "notify")
SERVICES = ("gateway", *WORKERS)


def say(message: str) -> None:
    print(f"[load] {message}", flush=True)


@dataclass
class Ports:
    amqp: int = 5673
    amqp_dist: int = 25673
    management: int = 15673
    mongo: int = 27117
    sandbox: int = 8290
    gateway: int = 8280
    codec: int = 8281
    imaging: int = 8282
    matching: int = 8283
    notify: int = 8284

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody listens on now (the smoke test, which may run beside `make load`)."""
        return cls(**{name: free_port() for name in cls.__dataclass_fields__})

    def service(self, name: str) -> int:
        return int(getattr(self, name))


def rabbitmq_script(name: str) -> str:
    """The real script (Debian's /usr/sbin wrappers switch to the rabbitmq user, whose home is elsewhere)."""
    packaged = Path("/usr/lib/rabbitmq/bin") / name
    if packaged.exists():
        return str(packaged)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"[load] {name} not found: install rabbitmq-server (see .ci/run)")
    return found


@dataclass
class Stack:
    """One system under load: its own broker node, database, sandbox, gateway and workers."""

    name: str = "run"
    ports: Ports = field(default_factory=Ports)
    db_name: str = "gradload"
    log_level: str = "WARNING"
    extra_env: dict[str, str] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)  # one service's own settings
    children: dict[str, local.Child] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)  # pieces the fault injector took down on purpose
    restarts: dict[str, int] = field(default_factory=dict)
    _supervisor: asyncio.Task[None] | None = None

    @property
    def home(self) -> Path:
        return LOAD_VAR / self.name

    @property
    def node(self) -> str:
        return f"gradload-{self.name}@localhost"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports.amqp}/"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports.mongo}/?directConnection=true"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.management}"

    def describe(self) -> dict[str, Any]:
        """What the audit needs to find this run again (written to run.json)."""
        return {
            "name": self.name,
            "ports": asdict(self.ports),
            "db_name": self.db_name,
            "mongo_url": self.mongo_url,
            "mongo_data": str(self.home / "mongo"),
            "sandbox_url": self.sandbox_url,
            "management_url": self.management_url,
            "gateway_url": self.gateway_url,
        }

    # --- the whole stack ----------------------------------------------------------------------

    async def start(self) -> None:
        """A clean start: the previous run of this name is stopped and its data removed."""
        await self.stop()
        self.down, self.restarts = set(), {}
        if self.home.exists():
            shutil.rmtree(self.home)
        for sub in ("logs", "run", "mongo", "rabbit"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        local.VAR.mkdir(exist_ok=True)
        local.ensure_zbar()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "ENVIRONMENT": "development",
            "HTTP_HOST": "127.0.0.1",
            "LOG_LEVEL": self.log_level,
            "AMQP_URL": self.amqp_url,
            "MONGO_URL": self.mongo_url,
            "MONGO_DB": self.db_name,
            "CODEC_CIPHER_KEY": local.dev_key("codec-cipher.key", "CHSI cipher key"),
            "GATEWAY_DATA_KEY": local.dev_key("gateway-data.key", "key for personal data at rest"),
            # Every simulated student comes from 127.0.0.1: the per-address login limit would throttle
            # the run, not the system (one real address is one phone).
            "GATEWAY_LOGIN_PER_MINUTE": "1000000",
            "GATEWAY_HTTP_PORT": str(self.ports.gateway),
            "SANDBOX_PORT": str(self.ports.sandbox),
            # A payment notification the gateway missed (it was restarted) comes again soon.
            "SANDBOX_NOTIFY_RETRY_DELAYS_S": "5,10,15,30,60,120",
            **self.extra_env,
        }
        self.env.pop("WECHAT_APPID", None)  # always the sandbox
        await self.start_rabbit()
        await self.start_mongo()
        sandbox = local.wechat_sandbox(self.env)
        assert sandbox is not None
        self._adopt(sandbox)
        await sandbox.start()
        for name in SERVICES:
            env = {**self.env, **self.service_env.get(name, {}), "HTTP_PORT": str(self.ports.service(name))}
            self._adopt(local.Child(name, [local.PY, "-m", f"services.{name}"], env))
        for name in SERVICES:
            await self.children[name].start()
        ready = await asyncio.gather(
            *(self.wait_ready(n) for n in SERVICES), self._wait_http(self.sandbox_url)
        )
        if not all(ready):
            raise RuntimeError(f"the stack did not come up; see {self.home / 'logs'}")
        (self.home / "run.json").write_text(json.dumps(self.describe(), indent=2))
        self._supervisor = asyncio.create_task(self.supervise())
        say(
            f"stack '{self.name}' up: gateway {self.gateway_url}, broker node {self.node} ({self.ports.amqp})"
        )

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self.down = set(self.children)  # nothing is restarted from here on
        for name in SERVICES:
            if name in self.children:
                await self.children[name].stop(timeout=35)
        if "sandbox" in self.children:
            await self.children["sandbox"].stop(timeout=5)
        if "mongo" in self.children:
            await self.children["mongo"].stop(timeout=10)
        await self.stop_rabbit()
        local.kill_leftovers(self.home / "run")  # a crashed earlier run's processes

    def _adopt(self, child: local.Child) -> None:
        child.run_dir = self.home / "run"
        child.log_path = self.home / "logs" / f"{child.name}.log"
        self.children[child.name] = child

    # --- readiness ----------------------------------------------------------------------------

    async def wait_ready(self, name: str, timeout: float = 120.0) -> bool:
        return await local.wait_ready(name, self.ports.service(name), timeout)

    async def _wait_http(self, url: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{url}/sandbox/info") as resp:
                        if resp.status == 200:
                            return True
                await asyncio.sleep(0.3)
        return False

    async def supervise(self) -> None:
        """Start again a service that died (and was not taken down on purpose), after a second."""
        while True:
            await asyncio.sleep(0.5)
            for name in SERVICES:
                child = self.children[name]
                if name in self.down or child.proc is None or child.proc.returncode is None:
                    continue
                await asyncio.sleep(1.0)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                say(f"{name} exited with {child.proc.returncode}; starting it again")
                await child.start()

    # --- single pieces (the fault injector) ---------------------------------------------------

    async def kill(self, name: str) -> float:
        """SIGKILL a service; the supervisor starts it again. Returns seconds until it is ready again."""
        child = self.children[name]
        assert child.proc is not None
        started = time.monotonic()
        os.kill(child.proc.pid, signal.SIGKILL)
        await child.proc.wait()
        await asyncio.sleep(1.5)  # the supervisor's turn
        await self.wait_ready(name)
        return time.monotonic() - started

    async def restart(self, name: str) -> float:
        """Stop a service with SIGTERM (it drains) and start it again."""
        child = self.children[name]
        started = time.monotonic()
        self.down.add(name)
        await child.stop(timeout=35)
        await child.start()
        self.down.discard(name)
        await self.wait_ready(name)
        return time.monotonic() - started

    async def restart_mongo(self) -> float:
        started = time.monotonic()
        await self.children["mongo"].stop(timeout=10)
        await self.children["mongo"].start()
        await self._wait_port(self.ports.mongo, 30)
        return time.monotonic() - started

    async def restart_rabbit(self) -> float:
        started = time.monotonic()
        await self.stop_rabbit()
        await self.start_rabbit()
        return time.monotonic() - started

    # --- the database -------------------------------------------------------------------------

    async def start_mongo(self) -> None:
        if "mongo" not in self.children:
            data = self.home / "mongo"
            args = [
                str(Path(local.PY).with_name("nx-27017")),
                "--data-dir",
                str(data),
                "--host",
                "127.0.0.1",
                "-p",
                str(self.ports.mongo),
                "--log-file",
                str(self.home / "logs" / "mongo-server.log"),
                "--pid-file",  # its own: nx-27017 refuses to start while the default one names a live server
                str(self.home / "mongo" / "nx-27017.pid"),
            ]
            self._adopt(local.Child("mongo", args, self.env, quiet=True))
        if local.port_open("127.0.0.1", self.ports.mongo):
            raise RuntimeError(f"port {self.ports.mongo} is taken (another make load?)")
        await self.children["mongo"].start()
        await self._wait_port(self.ports.mongo, 30)

    async def _wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not local.port_open("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after {timeout:g} s; see {self.home / 'logs'}")
            await asyncio.sleep(0.2)

    # --- the broker node ----------------------------------------------------------------------

    def rabbit_env(self) -> dict[str, str]:
        base = self.home / "rabbit"
        (base / "home").mkdir(parents=True, exist_ok=True)
        cookie = base / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(os.urandom(16).hex().upper())
            cookie.chmod(0o400)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.ports.amqp}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.ports.management}\n"
            "loopback_users.guest = true\n"
        )
        (base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (base / "rabbitmq-env.conf").write_text("")  # not the system's (it names the system node)
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(base / "home"),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports.amqp),
            "RABBITMQ_DIST_PORT": str(self.ports.amqp_dist),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    async def start_rabbit(self) -> None:
        if local.port_open("127.0.0.1", self.ports.amqp):
            raise RuntimeError(f"port {self.ports.amqp} is taken (another make load?)")
        child = local.Child("rabbit", [rabbitmq_script("rabbitmq-server")], self.rabbit_env())
        self._adopt(child)
        await child.start()
        deadline = time.monotonic() + 90
        async with aiohttp.ClientSession(auth=aiohttp.BasicAuth("guest", "guest")) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.management_url}/api/overview") as resp:
                        if resp.status == 200 and local.port_open("127.0.0.1", self.ports.amqp):
                            return
                if time.monotonic() > deadline or (
                    child.proc is not None and child.proc.returncode is not None
                ):
                    raise RuntimeError(f"RabbitMQ node {self.node} did not start; see {self.home / 'logs'}")
                await asyncio.sleep(0.5)

    async def stop_rabbit(self) -> None:
        """Stop this node only (never the system node): SIGTERM to its rabbitmq-server script, which runs
        `rabbitmqctl stop` (a clean broker shutdown); a node left by a crashed run is stopped by name."""
        child = self.children.get("rabbit")
        if child is not None and child.proc is not None and child.proc.returncode is None:
            await child.stop(timeout=90)
        elif (self.home / "rabbit" / "rabbitmq.conf").exists() and local.port_open(
            "127.0.0.1", self.ports.amqp
        ):
            await asyncio.to_thread(
                subprocess.run,
                [rabbitmq_script("rabbitmqctl"), "-n", self.node, "stop"],
                env=self.rabbit_env(),
                capture_output=True,
                timeout=90,
                check=False,
            )
        for _ in range(100):  # 30 s for the port to close
            if not local.port_open("127.0.0.1", self.ports.amqp):
                break
            await asyncio.sleep(0.3)

    async def queue_depths(self, http: aiohttp.ClientSession) -> dict[str, tuple[int, int]] | None:
        """Every queue's (ready, unacked), from the node's management API; None while it is down."""
        try:
            async with http.get(
                f"{self.management_url}/api/queues/%2F",
                params={"columns": "name,messages_ready,messages_unacknowledged"},
                timeout=aiohttp.ClientTimeout(total=2),
            ) as resp:
                if resp.status != 200:
                    return None
                rows = await resp.json()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None
        return {
            str(r["name"]): (int(r.get("messages_ready") or 0), int(r.get("messages_unacknowledged") or 0))
            for r in rows
        }


def main() -> int:
    """`python -m bench.load.stack stop`: stop a `make load` stack left behind by a crash."""
    stack = Stack(name=sys.argv[2] if len(sys.argv) > 2 else "run")
    asyncio.run(stack.stop())
    return 0


if __name__ == "__main__":
    sys.exit(main())
