"""Fixtures for the real parts: an nx-27017 MongoDB-wire server and RabbitMQ vhosts of our own.

`TEST_MONGO_URL` points the suite at another MongoDB instead of starting nx-27017. Each test gets
its own database name and, where it touches the bus, its own RabbitMQ vhost, so no state leaks
from one test to the next.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
AMQP_HOST = os.environ.get("TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("TEST_AMQP_PORT", "5672"))
CIPHER_KEY = base64.b64encode(bytes(range(32))).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TEST_MONGO_URL"):
        yield url
        return
    data_dir = tmp_path_factory.mktemp("nx27017")
    port = free_port()
    exe = Path(sys.executable).with_name("nx-27017")
    proc = subprocess.Popen(
        [
            str(exe),
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            str(data_dir / "server.log"),
            "--pid-file",
            str(data_dir / "server.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=500)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.admin.command("ping")
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"nx-27017 did not start; see {data_dir / 'server.log'}") from None
            time.sleep(0.1)
    client.close()
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def mongo_db() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


MANAGEMENT_URL = f"http://{AMQP_HOST}:{os.environ.get('TEST_AMQP_MANAGEMENT_PORT', '15672')}/api"


def _management(method: str, path: str, body: bytes | None = None) -> bool:
    """One call to RabbitMQ's management API as guest (the plugin deploy/local/system-deps.sh enables);
    False when it cannot be reached, so the caller uses rabbitmqctl (about a second per call: the Erlang
    CLI starts each time, three calls a test)."""
    request = urllib.request.Request(f"{MANAGEMENT_URL}{path}", data=body, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def _add_vhost(vhost: str) -> None:
    quoted = urllib.parse.quote(vhost, safe="")
    permissions = b'{"configure": ".*", "write": ".*", "read": ".*"}'
    if _management("PUT", f"/vhosts/{quoted}") and _management(
        "PUT", f"/permissions/{quoted}/guest", permissions
    ):
        return
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl not found: RabbitMQ must be installed (see .ci/run)")
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def _delete_vhost(vhost: str) -> None:
    if not _management("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}"):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.fixture
def amqp_vhost() -> Iterator[str]:
    """A fresh vhost per test: queues, retry and dead queues start empty every time."""
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    _add_vhost(vhost)
    yield vhost
    _delete_vhost(vhost)


@pytest.fixture
def amqp_url(amqp_vhost: str) -> str:
    return f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{amqp_vhost}"


@pytest.fixture
def env(mongo_url: str, mongo_db: str, amqp_url: str) -> dict[str, str]:
    """Environment for a service under test (in-process settings or a subprocess)."""
    return {
        "ENVIRONMENT": "test",
        "MONGO_URL": mongo_url,
        "MONGO_DB": mongo_db,
        "AMQP_URL": amqp_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "CODEC_CIPHER_ALGORITHM": "aes-256-gcm",
        "CODEC_CIPHER_KEY": CIPHER_KEY,
        "BUS_RETRY_DELAY_MS": "100",
        "BUS_MAX_ATTEMPTS": "3",
        "OUTBOX_SWEEP_INTERVAL_S": "0.2",
        "DRAIN_TIMEOUT_S": "10",
        "LOG_FORMAT": "json",
    }


@pytest.fixture
def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


@pytest.fixture
async def database(mongo_url: str, mongo_db: str) -> AsyncIterator[object]:
    from shared.config import Settings
    from shared.db import Database

    db = Database(Settings(mongo_url=mongo_url, mongo_db=mongo_db))
    yield db
    await db.client.drop_database(mongo_db)
    await db.close()
