"""`make images-smoke`: the built images, run with podman, through one student's journey.

Against the host's RabbitMQ (a vhost of its own) and an nx-27017 started here on a free port, it runs
every service image as deployed (ENVIRONMENT=production, the image's non-root uid, a read-only root
filesystem with a small /tmp, no capabilities, no privilege escalation, host network on free ports),
with the WeChat sandbox on the host. Then:

1. each container's `/healthz` and `/readyz` answer 200;
2. each image runs as uid 10001, cannot write its root filesystem, and carries no package of another
   service's extra;
3. `make demo`'s journey (deploy/local/demo.py) runs against the containerised gateway and workers and
   ends `in_review` (code decoded by the codec, photo standardised by imaging, compared by matching);
4. an operator approves it through the console API; the application reaches `approved`, the notify
   container sends the review message to the sandbox and records it `sent` in `notifications`.

Everything it started (containers, the database, the sandbox, the vhost) is stopped and removed, also
on failure. Timings go to var/images/smoke.json. Run as root (podman) from the repository root with the
virtualenv's Python: `make images-smoke`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from deploy.local import run as local  # noqa: E402

HERE = Path(__file__).resolve().parent
SERVICES = ("gateway", "codec", "imaging", "matching", "notify")
PREFIX = os.environ.get("IMAGE_PREFIX", "localhost/gradphoto")
TAG = os.environ.get("IMAGE_TAG", "dev")
OUT = ROOT / "var" / "images"
UID = "10001"
PODMAN_ENV = {
    **os.environ,
    "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(HERE / "containers.conf")),
    "CONTAINERS_STORAGE_CONF": os.environ.get("CONTAINERS_STORAGE_CONF", str(HERE / "storage.conf")),
}


def say(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


def podman(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300) -> str:
    done = subprocess.run(
        ["podman", *args], env=env or PODMAN_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ...: {done.stderr.strip()[-800:]}")
    return done.stdout


def command(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A command with a time limit; raises on failure unless check=False."""
    kwargs.setdefault("check", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 (http://127.0.0.1 URLs made here)
            return int(resp.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


async def until(what: Callable[[], Awaitable[bool]], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not await what():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:.0f} s: {message}")
        await asyncio.sleep(1)


class Smoke:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)
        self.home = OUT / "smoke"
        self.containers: list[str] = []
        self.children: list[local.Child] = []
        self.vhost = f"smoke-{self.tag}"
        self.ports = {s: local_free_port() for s in SERVICES}
        self.timings: dict[str, float] = {}
        self.env: dict[str, str] = {}

    # --- the pieces on the host ------------------------------------------------------------------

    async def start_host_side(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        mongo_port = local_free_port()
        mongo = local.Child(
            "mongo",
            [
                str(Path(sys.executable).with_name("nx-27017")),
                "--data-dir",
                str(self.home / "mongo"),
                "-p",
                str(mongo_port),
                "--log-file",
                str(self.home / "mongo.log"),
            ],
            dict(os.environ),
            run_dir=self.home / "run",
            log_path=self.home / "mongo.out",
        )
        (self.home / "mongo").mkdir()
        self.children.append(mongo)
        await mongo.start()
        await until(lambda: asyncio.to_thread(local.port_open, "127.0.0.1", mongo_port), 60, "nx-27017 up")
        await asyncio.to_thread(command, ["rabbitmqctl", "-q", "add_vhost", self.vhost])
        await asyncio.to_thread(
            command, ["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"]
        )
        sandbox_port = local_free_port()
        self.env = {
            "MONGO_URL": f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true",
            "MONGO_DB": f"smoke_{self.tag}",
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
            "HTTP_HOST": "127.0.0.1",
            "CODEC_CIPHER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "GATEWAY_DATA_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "DRAIN_TIMEOUT_S": "10",
            "GATEWAY_HTTP_PORT": str(self.ports["gateway"]),
            "SANDBOX_PORT": str(sandbox_port),
        }
        sandbox_env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        sandbox = local.wechat_sandbox(sandbox_env)
        assert sandbox is not None, "WECHAT_APPID is set: the smoke test runs against the sandbox only"
        sandbox.run_dir = self.home / "run"
        sandbox.log_path = self.home / "sandbox.log"
        self.children.append(sandbox)
        await sandbox.start()
        # What wechat_sandbox() added for the clients (WECHAT_*, WECHATPAY_*): the gateway and notify's.
        self.wechat = {k: v for k, v in sandbox_env.items() if k.startswith(("WECHAT_", "WECHATPAY_"))}
        self.sandbox = f"http://127.0.0.1:{sandbox_port}"
        await until(lambda: asyncio.to_thread(local.port_open, "127.0.0.1", sandbox_port), 30, "sandbox up")

    def seed(self) -> None:
        """The demo school (a production gateway seeds none) and a console operator, written by the
        gateway image's own code (`podman exec`), so the documents match the version under test."""
        gateway = f"smoke-{self.tag}-gateway"
        script = (
            "import asyncio\n"
            "from services.gateway.config import GatewaySettings\n"
            "from services.gateway.schools import Schools, demo_school\n"
            "from shared.db import Database\n"
            "async def main():\n"
            "    database = Database(GatewaySettings())\n"
            "    await Schools(database).put(demo_school())\n"
            "    await database.close()\n"
            "asyncio.run(main())\n"
        )
        podman("exec", gateway, "python", "-c", script)
        self.operator = ("smoke@example.com", secrets.token_urlsafe(18))
        podman(
            "exec",
            "--env",
            "CONSOLE_OPERATOR_PASSWORD",
            gateway,
            "python",
            "-m",
            "services.gateway.console.cli",
            "create-operator",
            "--email",
            self.operator[0],
            "--role",
            "admin",
            env={**PODMAN_ENV, "CONSOLE_OPERATOR_PASSWORD": self.operator[1]},
        )
        say("seeded the demo school and an operator through the gateway image")

    # --- the containers ----------------------------------------------------------------------------

    def run_containers(self) -> None:
        for service in SERVICES:
            name = f"smoke-{self.tag}-{service}"
            env = {**self.env, "HTTP_PORT": str(self.ports[service])}
            if service in ("gateway", "notify"):
                env |= self.wechat
            names = sorted(env)
            podman(
                "run",
                "--detach",
                "--name",
                name,
                "--network",
                "host",
                "--read-only",
                "--tmpfs",
                "/tmp:rw,size=64m,mode=1777",  # noqa: S108 (the container's own /tmp)
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                *[a for n in names for a in ("--env", n)],  # values from podman's environment
                f"{PREFIX}/{service}:{TAG}",
                env={**PODMAN_ENV, **env},
            )
            self.containers.append(name)
        say(f"started {len(self.containers)} containers")

    async def probes(self) -> None:
        for service in SERVICES:
            port = self.ports[service]

            async def answers(port: int = port) -> bool:
                codes = await asyncio.gather(
                    asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/healthz"),
                    asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/readyz"),
                )
                return list(codes) == [200, 200]

            await until(answers, 240, f"{service}'s /healthz and /readyz")
            # The image's own HEALTHCHECK command, as docker or Kubernetes tooling would run it.
            name = f"smoke-{self.tag}-{service}"
            await asyncio.to_thread(podman, "healthcheck", "run", name)
            say(f"{service}: /healthz 200, /readyz 200, HEALTHCHECK healthy")

    def inspect_images(self) -> None:
        """Non-root, read-only, and nothing of another service's extra in the image."""
        from tests.deploy.test_dockerfiles import EXTRAS, NO_DEPS, PYPROJECT, closure, requirement_name

        base = PYPROJECT["project"]["dependencies"]
        own = {
            s: closure(base + EXTRAS[s]) | {requirement_name(p) for p in NO_DEPS.get(s, [])} for s in SERVICES
        }
        for service, name in zip(SERVICES, self.containers, strict=True):
            user = podman("exec", name, "id", "-u").strip()
            assert user == UID, f"{service} runs as uid {user}"
            write = subprocess.run(
                ["podman", "exec", name, "sh", "-c", "touch /opt/venv/written"],
                env=PODMAN_ENV,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr
            listing = podman("exec", name, "python", "-m", "pip", "list", "--format", "json")
            installed = {requirement_name(p["name"]) for p in json.loads(listing)}
            foreign = set().union(*(own[s] for s in SERVICES if s != service)) - own[service]
            assert not installed & foreign, f"{service} carries {sorted(installed & foreign)}"
            unexpected = installed - own[service] - {"gradphoto", "pip", "setuptools", "wheel"}
            assert not unexpected, f"{service} has packages outside its extra: {sorted(unexpected)}"
            say(f"{service}: uid {UID}, read-only root, {len(installed)} packages, all of its own extra")

    # --- the journey --------------------------------------------------------------------------------

    async def journey(self) -> None:
        gateway = f"http://127.0.0.1:{self.ports['gateway']}"
        demo = await asyncio.to_thread(
            command,
            [sys.executable, str(ROOT / "deploy" / "local" / "demo.py")],
            env={**os.environ, **self.env, "DEMO_GATEWAY": gateway, "DEMO_SANDBOX": self.sandbox},
            cwd=ROOT,
            timeout=600,
            check=False,
        )
        (self.home / "demo.log").write_text(demo.stdout + demo.stderr)
        if demo.returncode != 0:
            raise RuntimeError(f"make demo's journey failed:\n{demo.stdout[-3000:]}{demo.stderr[-3000:]}")
        application = await self.application()
        assert application["state"] == "in_review", f"the journey ended in {application['state']}"
        say(f"demo journey: {application['state']} (match score {application.get('match', {}).get('score')})")

        import aiohttp

        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            console = Console(http, gateway)
            await console.call("POST", "/login", {"email": self.operator[0], "password": self.operator[1]})
            case = (await console.call("POST", "/reviews/next", {}))["case"]
            assert case and case["application_id"] == application["_id"], case
            await console.call(
                "POST",
                f"/reviews/{application['_id']}/decision",
                {"decision": "approved", "note": "image smoke test"},
            )

            async def approved() -> bool:
                return bool((await self.application())["state"] == "approved")

            await until(approved, 60, "the application approved")

            async def sent() -> bool:
                note = await self.notification("review_approved")
                return note is not None and note.get("state") == "sent"

            await until(sent, 60, "the review notification recorded as sent")
            async with http.get(f"{self.sandbox}/sandbox/messages") as resp:
                messages = (await resp.json())["messages"]
        openid = (await self.application())["owner_openid"]
        mine = [m for m in messages if m["touser"] == openid]
        assert mine, "the sandbox received no subscribe message for the student"
        say(f"approved by the operator; notify sent {len(mine)} message(s) to the student, recorded as sent")

    async def application(self) -> dict[str, Any]:
        from shared.config import Settings
        from shared.db import Database

        database = Database(Settings(mongo_url=self.env["MONGO_URL"], mongo_db=self.env["MONGO_DB"]))
        try:
            docs = await database.db["applications"].find({}).to_list(10)
        finally:
            await database.close()
        assert len(docs) == 1, f"{len(docs)} applications in the smoke database"
        return dict(docs[0])

    async def notification(self, kind: str) -> dict[str, Any] | None:
        from shared.config import Settings
        from shared.db import Database

        database = Database(Settings(mongo_url=self.env["MONGO_URL"], mongo_db=self.env["MONGO_DB"]))
        try:
            doc = await database.db["notifications"].find_one({"kind": kind})
        finally:
            await database.close()
        return dict(doc) if doc is not None else None

    # --- tidy up -------------------------------------------------------------------------------------

    def container_logs(self) -> None:
        for name in self.containers:
            logs = command(["podman", "logs", "--tail", "30", name], env=PODMAN_ENV, check=False)
            say(f"--- {name} (last lines)\n{logs.stdout}{logs.stderr}")

    async def stop(self) -> None:
        for name in self.containers:
            podman("stop", "--time", "15", name, check=False, timeout=60)
            podman("rm", "--force", name, check=False, timeout=120)
        for child in reversed(self.children):
            await child.stop(timeout=10)
        await asyncio.to_thread(command, ["rabbitmqctl", "-q", "delete_vhost", self.vhost], check=False)
        shutil.rmtree(self.home / "mongo", ignore_errors=True)
        left = podman(
            "ps", "--all", "--filter", f"name=smoke-{self.tag}", "--format", "{{.Names}}", check=False
        )
        assert not left.strip(), f"containers left: {left}"
        say("stopped and removed everything it started")


class Console:
    """The console API as an operator's browser uses it: the session and CSRF cookies (Secure in
    production, so kept here by hand: this plain-HTTP hop stands for the ingress's TLS), the CSRF header."""

    def __init__(self, http: Any, gateway: str) -> None:
        self.http, self.base = http, f"{gateway}/console/api/v1"
        self.cookies: dict[str, str] = {}

    async def call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        from http.cookies import SimpleCookie

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if "console_csrf" in self.cookies:
            headers["X-CSRF-Token"] = self.cookies["console_csrf"]
        async with self.http.request(method, f"{self.base}{path}", json=body, headers=headers) as resp:
            for header in resp.headers.getall("Set-Cookie", []):
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            answer = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"console {method} {path}: {resp.status} {answer}")
            return answer


def local_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def image_exists(image: str) -> bool:
    return command(["podman", "image", "exists", image], env=PODMAN_ENV, check=False).returncode == 0


async def main() -> int:
    missing = [s for s in SERVICES if not image_exists(f"{PREFIX}/{s}:{TAG}")]
    if missing:
        say(f"no image for {', '.join(missing)}: run `make images` first")
        return 1
    smoke = Smoke()
    started = time.monotonic()
    ok = False
    try:
        await smoke.start_host_side()
        mark = time.monotonic()
        smoke.run_containers()
        await smoke.probes()
        smoke.timings["containers_ready_s"] = round(time.monotonic() - mark, 1)
        smoke.inspect_images()
        smoke.seed()
        mark = time.monotonic()
        await smoke.journey()
        smoke.timings["journey_s"] = round(time.monotonic() - mark, 1)
        ok = True
    except Exception as error:  # report, show the containers' last lines, tidy up, fail
        say(f"FAILED: {error}")
        smoke.container_logs()
    finally:
        await smoke.stop()
    smoke.timings["total_s"] = round(time.monotonic() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "smoke.json").write_text(json.dumps({"ok": ok, **smoke.timings}, indent=2))
    say(("passed" if ok else "failed") + f" in {smoke.timings['total_s']} s: {smoke.timings}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
