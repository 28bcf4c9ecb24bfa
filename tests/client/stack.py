"""The system the client e2e drives, started the way `make run` starts it (deploy/local/run.py's `Child`,
`wechat_sandbox`, `wait_ready`), on free ports, a database and a RabbitMQ vhost of its own, so it never
touches `make run`'s system or another test's. Real RabbitMQ (the machine's broker), real nx-27017, the
WeChat sandbox, the gateway and the four workers as processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local import run as local
from deploy.local.faces import admission_photo, student_photo
from services.gateway.console.operators import Operators, Role
from services.gateway.roster import import_roster
from services.gateway.schools import Schools, demo_school
from shared.blobs import BlobStore
from shared.config import Settings
from shared.db import Database
from tests.conftest import free_port

SERVICES = ("gateway", "codec", "imaging", "matching", "notify")
SCHOOL = "10487"
OPERATOR_EMAIL = "reviewer@client-e2e.example"
OPERATOR_PASSWORD = secrets.token_urlsafe(16)
# The variants of the journey (miniprogram/e2e/journeys.js SCENARIOS).
SCENARIOS = ("happy", "quality_retake", "match_retake", "pay_cancel", "withdraw")


def say(message: str) -> None:
    print(f"[client-e2e] {message}", flush=True)


def hopper(size: tuple[int, int]) -> bytes:
    """matplotlib's grace_hopper.jpg (a frontal studio portrait, Navy cap on) as a 3:4 phone photo, nothing
    painted: another person than the students (deploy/local/faces.py's astronaut), and a cap (免冠 fails)."""
    import cv2
    import matplotlib

    image = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    height, width = image.shape[:2]
    space = max(0, round(width * 4 / 3) - height)  # room above the cap, as a phone frames a portrait
    canvas = cv2.copyMakeBorder(image, space, 0, 0, 0, cv2.BORDER_CONSTANT, value=(235, 235, 235))
    ok, data = cv2.imencode(".jpg", cv2.resize(canvas, size), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())


def other_person() -> bytes:
    """A roster photo of someone else: whoever the student is, the comparison with it fails, as when a
    school imported the wrong admission photo."""
    return hopper((480, 640))


@dataclass
class Student:
    index: int
    scenario: str
    run_tag: str

    @property
    def name(self) -> str:
        return "赵钱孙李周吴郑王冯陈"[self.index % 10] + "小明红华强丽军伟芳娜敏"[(self.index // 10) % 11]

    @property
    def number(self) -> str:
        return f"29{self.run_tag}{self.index:04d}"

    @property
    def id_last4(self) -> str:
        return "2(3)" if self.index % 2 == 0 else f"{1000 + self.index:04d}"[-4:]

    @property
    def openid(self) -> str:
        return f"oE2E{self.run_tag}{self.index:06d}".ljust(28, "0")[:28]

    def roster_row(self) -> dict[str, str]:
        return {
            "name": self.name,
            "student_number": self.number,
            "id_last4": self.id_last4,
            "class_name": "2022级口腔医学1班",
            "level": "本科",
            "onsite_shot": "否",
        }


@dataclass
class ClientStack:
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="client-e2e-")))
    run_tag: str = field(default_factory=lambda: f"{secrets.randbelow(10**4):04d}")
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    children: list[local.Child] = field(default_factory=list)
    vhost: str = ""
    db_name: str = ""

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox']}"

    def _child(self, name: str, args: list[str], env: dict[str, str], *, quiet: bool = False) -> local.Child:
        child = local.Child(
            name, args, env, quiet=quiet, run_dir=self.home / "run", log_path=self.home / f"{name}.log"
        )
        self.children.append(child)
        return child

    async def start(self, students: list[Student]) -> None:
        """Database and broker first, the school, roster and reviewer seeded, then the services."""
        self.ports = {name: free_port() for name in ("mongo", "sandbox", *SERVICES)}
        self.vhost = f"client-e2e-{uuid.uuid4().hex[:8]}"
        self.db_name = f"client_e2e_{self.run_tag}"
        if shutil.which("rabbitmqctl") is None:
            raise RuntimeError("rabbitmqctl not found: RabbitMQ must be installed (see .ci/run)")
        for args in (
            ["add_vhost", self.vhost],
            ["set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"],
        ):
            await asyncio.to_thread(
                subprocess.run, ["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60
            )
        local.ensure_zbar()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(local.ROOT),
            "PYTHONUNBUFFERED": "1",
            "ENVIRONMENT": "development",
            "HTTP_HOST": "127.0.0.1",
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
            "MONGO_URL": f"mongodb://127.0.0.1:{self.ports['mongo']}/?directConnection=true",
            "MONGO_DB": self.db_name,
            "CODEC_CIPHER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "GATEWAY_DATA_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "GATEWAY_HTTP_PORT": str(self.ports["gateway"]),
            "SANDBOX_PORT": str(self.ports["sandbox"]),
            "SANDBOX_NOTIFY_RETRY_DELAYS_S": "0.5,1,2,5",
            "OUTBOX_SWEEP_INTERVAL_S": "0.2",
            # Two failed comparisons send the case to the registrar (the default is 3, which would take
            # the day's three standardisations in the match_retake journey).
            "MATCHING_REGISTRAR_AFTER_FAILURES": "2",
            "LOG_LEVEL": "INFO",
        }
        self.env.pop("WECHAT_APPID", None)
        (self.home / "mongo").mkdir(parents=True, exist_ok=True)
        exe = str(Path(local.PY).with_name("nx-27017"))
        mongo = self._child(
            "mongo",
            [
                exe,
                "--data-dir",
                str(self.home / "mongo"),
                "-p",
                str(self.ports["mongo"]),
                "--host",
                "127.0.0.1",
                "--log-file",
                str(self.home / "mongo.log"),
                # Its own pid file: with the default one, a second nx-27017 on the machine refuses to start.
                "--pid-file",
                str(self.home / "mongo.pid"),
            ],
            self.env,
            quiet=True,
        )
        await mongo.start()
        for _ in range(450):  # a busy machine can take a while to start it
            if local.port_open("127.0.0.1", self.ports["mongo"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"nx-27017 did not start; see {self.home / 'mongo.log'}")
        await self.seed(students)
        sandbox = local.wechat_sandbox(self.env)
        assert sandbox is not None
        sandbox.run_dir, sandbox.log_path = self.home / "run", self.home / "sandbox.log"
        self.children.append(sandbox)
        await sandbox.start()
        for name in SERVICES:
            env = {**self.env, "HTTP_PORT": str(self.ports[name])}
            await self._child(name, [local.PY, "-m", f"services.{name}"], env).start()
        ready = await asyncio.gather(*(local.wait_ready(n, self.ports[n], timeout=180) for n in SERVICES))
        if not all(ready):
            raise RuntimeError(f"the stack did not come up; logs in {self.home}")
        say(f"stack up: gateway {self.gateway_url}, sandbox {self.sandbox_url}, logs in {self.home}")

    async def seed(self, students: list[Student]) -> None:
        database = Database(Settings(mongo_url=self.env["MONGO_URL"], mongo_db=self.db_name))
        try:
            await Schools(database).put(demo_school(SCHOOL))
            photos = {
                s.number: other_person() if s.scenario == "match_retake" else admission_photo()
                for s in students
            }
            report = await import_roster(
                database, BlobStore(database), SCHOOL, [s.roster_row() for s in students], photos
            )
            if report.rejected:
                raise RuntimeError(f"roster rows refused: {report.rejected[:3]}")
            await Operators(database).create(OPERATOR_EMAIL, OPERATOR_PASSWORD, Role.REVIEWER, [SCHOOL])
        finally:
            await database.close()

    async def stop(self) -> None:
        for child in reversed(self.children):
            await child.stop(timeout=35)
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True, timeout=60
        )

    def mint_code(self, student: Student) -> dict[str, Any]:
        """The student's 图像采集码 from the sandbox's CHSI stand-in."""
        body = {
            "name": student.name,
            "student_number": student.number,
            "id_last4": student.id_last4,
            "school_code": SCHOOL,
            "school_name": "示范大学",
            "class_name": "2022级口腔医学1班",
        }
        request = urllib.request.Request(
            f"{self.sandbox_url}/sandbox/chsi/codes",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def _sandbox_get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.sandbox_url}{path}", timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def sandbox_messages(self) -> list[dict[str, Any]]:
        """The subscribe messages WeChat (the sandbox) accepted."""
        return list(self._sandbox_get("/sandbox/messages")["messages"])

    def sandbox_orders(self) -> list[dict[str, Any]]:
        return list(self._sandbox_get("/sandbox/orders")["orders"])

    def metrics_url(self) -> str | None:
        url = f"{self.gateway_url}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return url if b"http_request_seconds" in answer.read() else None
        except OSError:
            return None

    def journey_config(self, students: list[Student], details: Path | None = None) -> dict[str, Any]:
        """What miniprogram/e2e/run.js reads: the stack's URLs, the reviewer, each student's kit."""
        kits = []
        files = self.home / "kits"
        files.mkdir(exist_ok=True)
        for s in students:
            code = self.mint_code(s)
            png = files / f"code-{s.index}.png"
            png.write_bytes(base64.b64decode(code["png_base64"]))
            photos = []
            for n in range(2):
                path = files / f"photo-{s.index}-{n}.jpg"
                path.write_bytes(student_photo(s.index * 10 + n + 1))
                photos.append(str(path))
            bad = files / f"capped-{s.index}.jpg"
            bad.write_bytes(hopper((720, 960)))  # a cap on: the quality check refuses it (headwear)
            kits.append(
                {
                    "scenario": s.scenario,
                    "openid": s.openid,
                    "phone": f"139{s.index:08d}",
                    "name": s.name,
                    "student_number": s.number,
                    "id_last4": s.id_last4,
                    "qr_text": code["qr_text"],
                    "code_png": str(png),
                    "photos": photos,
                    "bad_photo": str(bad),
                }
            )
        return {
            "gateway": self.gateway_url,
            "sandbox": self.sandbox_url,
            "metrics": self.metrics_url(),
            "school_code": SCHOOL,
            "operator": {"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD},
            "students": kits,
            "details": str(details) if details else None,
        }
