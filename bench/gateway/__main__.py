"""`make bench-gateway`: requests/s and p99 of GET /api/v1/application under wrk (50 connections).

Beside it in the same run: a bare aiohttp "hello" route in the same gateway process (the ceiling),
and the raw indexed-read rate of the database, because every status request reads the student's
application (one indexed read; the session is cached) and the local stand-in, nx-27017, is the
bound here. Results go to bench/RESULTS.md between the bench-gateway markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from pymongo import AsyncMongoClient

from bench.net import free_port
from bench.results import write_section

ROOT = Path(__file__).resolve().parents[2]
# Reads one status request makes once its session is cached: the application, found by its owner.
READS_PER_REQUEST = 1


def wrk(url: str, *, seconds: int, connections: int, token: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": float(errors.group(1)) if errors else 0.0}


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))  # type: ignore[union-attr]
    unit = value[len(str(re.match(r"[\d.]+", value).group(0))) :]  # type: ignore[union-attr]
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


async def seed(mongo_url: str, db_name: str) -> str:
    """One student with a session and an application in the paid state, written as the gateway does."""
    sys.path.insert(0, str(ROOT))
    from services.gateway.store import Sessions
    from shared.config import Settings
    from shared.db import Database
    from shared.events import utcnow

    database = Database(Settings(mongo_url=mongo_url, mongo_db=db_name))
    token, _ = await Sessions(database, timedelta(hours=2)).create("o-bench-student")
    app_id = str(uuid.uuid4())
    now = utcnow()
    await database.db["users"].insert_one(
        {"_id": "o-bench-student", "application_id": app_id, "created_at": now}
    )
    await database.db["applications"].insert_one(
        {
            "_id": app_id,
            "owner_openid": "o-bench-student",
            "state": "paid",
            "version": 3,
            "created_at": now,
            "updated_at": now,
            "student_id": "10487:2110216052",
            "school_code": "10487",
            "verified_code": {
                "chsi_id": "x",
                "masked_name": "赵**",
                "student_number": "2110216052",
                "id_last4": "2(3)",
                "school_code": "10487",
                "school_name": "示范大学",
                "education_category": "普通本专科",
                "level": "专科",
                "department": "临床医学院",
                "class_name": "2021级口腔医学16班",
            },
            "order": {"out_trade_no": "GP1", "amount_fen": 3500, "status": "paid", "paid_at": now},
            "photos": {},
            "outbox": {},
            "outbox_pending": 0,
        }
    )
    await database.close()
    return token


async def read_ceiling(mongo_url: str, db_name: str, seconds: float, concurrency: int = 50) -> float:
    """Indexed reads/s the database serves to 50 concurrent readers: the bound of a DB-backed endpoint."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, maxPoolSize=concurrency)
    users = client[db_name]["users"]
    done = 0
    deadline = time.perf_counter() + seconds

    async def reader() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await users.find_one({"_id": "o-bench-student"})
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (make bench-gateway does this as root)")
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    mongo_port, http_port = free_port(), free_port()
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    nx = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("nx-27017")),
            "--data-dir",
            str(work),
            "-p",
            str(mongo_port),
            "--log-file",
            str(work / "nx.log"),
            "--pid-file",
            str(work / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mongo_url = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
    server = None
    try:
        time.sleep(1.5)
        token = asyncio.run(seed(mongo_url, "bench"))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MONGO_URL": mongo_url,
            "MONGO_DB": "bench",
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(http_port),
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway.server"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("ready"):
            sys.exit("the gateway did not start")
        base = f"http://127.0.0.1:{http_port}"
        wrk(f"{base}/bench/hello", seconds=2, connections=args.connections, token=None)  # warm-up
        hello = wrk(f"{base}/bench/hello", seconds=args.seconds, connections=args.connections, token=None)
        status = wrk(
            f"{base}/api/v1/application", seconds=args.seconds, connections=args.connections, token=token
        )
        reads = asyncio.run(read_ceiling(mongo_url, "bench", seconds=5))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        nx.terminate()
        nx.wait(10)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    ratio = status["rps"] / hello["rps"]
    db_bound = reads / READS_PER_REQUEST
    section = "\n".join(
        [
            "## Gateway: the status endpoint (`make bench-gateway`)",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs, "
            f"{platform.processor() or platform.machine()}; Python {platform.python_version()}",
            f"- wrk, 1 thread, {args.connections} connections, {args.seconds} s each, against one gateway process "
            "(the client and the server share the 2 cores); database: nx-27017",
            "",
            "| endpoint | requests/s | p50 ms | p99 ms | non-2xx |",
            "|---|---:|---:|---:|---:|",
            f"| bare aiohttp `hello` (ceiling, same process) | {hello['rps']:.0f} | {hello['p50']:.2f} | {hello['p99']:.2f} "
            f"| {hello['non2xx']:.0f} |",
            f"| `GET /api/v1/application` | {status['rps']:.0f} | {status['p50']:.2f} | {status['p99']:.2f} "
            f"| {status['non2xx']:.0f} |",
            "",
            f"- status / ceiling: **{ratio:.2f}** (target ≥ 0.50); p99 {status['p99']:.1f} ms (target < 50 ms)",
            f"- database ceiling measured in the same run: nx-27017 serves {reads:.0f} indexed reads/s to 50 readers; "
            f"a status request needs {READS_PER_REQUEST} (the application, by owner; the session is cached in the "
            f"process), so the database alone caps "
            f"the endpoint at about {db_bound:.0f} requests/s: the endpoint reaches "
            f"{status['rps'] / db_bound:.0%} of that bound.",
        ]
    )
    print(section)
    if not args.no_write:
        write_section("gateway", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
