"""`make bench-notify`: subscribe messages per second end to end, beside the sandbox's own request rate.

Everything runs on this machine as in `make run`: the WeChat sandbox and the notify worker as their own
processes (`python -m sandbox.wechat`, `python -m services.notify`, send rate 0 = unlimited), RabbitMQ
(a throw-away vhost), nx-27017 (started here unless `MONGO_URL` is set). Three figures, same run:

- **ceiling**: the sandbox's raw `subscribe/send` rate, the same number of requests sent straight to it
  with 32 in flight from this process;
- **end to end**: N `review.decided.v1` events published to the broker; rate = N / (last sandbox receipt
  - first publish), and the latency from `occurred_at` to the sandbox's receipt;
- **database bound**: the reads and writes one notification costs (claim, notification record before and
  after the send, application, claim done), done N times with 32 in flight, no broker and no WeChat.

Target: end to end ≥ 50% of the ceiling. Results go to bench/RESULTS.md between the bench-notify markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from pymongo import AsyncMongoClient, MongoClient

from bench.net import free_port, wait_http
from bench.results import write_section
from shared.events import ReviewDecided, make_event
from shared.wechat.keys import client_env, generate_keyset, sandbox_env, write_keyset

ROOT = Path(__file__).resolve().parents[2]
OPENID = "oBench_0000000000000000000001"
IN_FLIGHT = 32


def start_mongo(tmp: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    if url := os.environ.get("MONGO_URL"):
        return url, None
    port = free_port()
    exe = Path(sys.executable).with_name("nx-27017")
    proc = subprocess.Popen(
        [
            str(exe),
            "--data-dir",
            str(tmp),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            str(tmp / "log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return f"mongodb://127.0.0.1:{port}/?directConnection=true", proc


async def ceiling(sandbox: str, keyset: Any, count: int) -> float:
    """Requests/s the sandbox answers to subscribe/send, IN_FLIGHT at a time, one token."""
    data = {
        "thing1": {"value": "示范大学"},
        "name2": {"value": "赵**"},
        "phrase3": {"value": "审核通过"},
        "thing4": {"value": "照片将上传学信网并打印邮寄"},
        "time5": {"value": "2026年11月28日 10:00"},
    }
    async with aiohttp.ClientSession() as http:
        body = {"grant_type": "client_credential", "appid": keyset.appid, "secret": keyset.secret}
        async with http.post(f"{sandbox}/cgi-bin/stable_token", json=body) as resp:
            token = (await resp.json(content_type=None))["access_token"]
        queue = iter(range(count))
        message = {
            "touser": OPENID,
            "template_id": "demo_review_result",
            "page": "pages/status/index",
            "data": data,
        }

        async def sender() -> None:
            for _ in queue:
                async with http.post(
                    f"{sandbox}/cgi-bin/message/subscribe/send", params={"access_token": token}, json=message
                ) as resp:
                    answer = await resp.json(content_type=None)
                    assert answer["errcode"] == 0, answer

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        return count / (time.perf_counter() - started)


async def database_bound(mongo_url: str, db_name: str, application_id: str, count: int) -> float:
    """Notifications/s the database alone allows: the reads and writes of one notification, N times."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[db_name]
    queue = iter(range(count))

    async def one() -> None:
        for _ in queue:
            key, now = uuid.uuid4().hex, datetime.now(UTC)
            await db["bench_claims"].insert_one({"_id": key, "state": "processing", "lease_until": now})
            await db["bench_notifications"].find_one({"_id": key})
            await db["applications"].find_one({"_id": application_id})
            await db["bench_notifications"].insert_one({"_id": key, "state": "sending", "created_at": now})
            await db["bench_notifications"].update_one(
                {"_id": key, "attempts": None}, {"$set": {"state": "sent"}}
            )
            await db["bench_claims"].update_one({"_id": key}, {"$set": {"state": "done"}})

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))
    rate = count / (time.perf_counter() - started)
    await client.close()
    return rate


async def _sends(http: aiohttp.ClientSession, sandbox: str) -> int:
    async with http.get(f"{sandbox}/sandbox/stats") as resp:
        return int((await resp.json())["calls"].get("subscribe_send", 0))


async def end_to_end(amqp_url: str, sandbox: str, application_id: str, count: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{sandbox}/sandbox/messages"):
            pass
        baseline = await _sends(http, sandbox)
        events = [
            make_event(
                ReviewDecided(
                    review_id=f"r-{i}",
                    photo_id="p-1",
                    student_id="10487:1",
                    decision="approved",
                    operator_id="op",
                ),
                application_id=application_id,
            )
            for i in range(count)
        ]
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("events")
            started = time.time()
            # Confirms awaited in batches, as a relay publishing a backlog would.
            for batch in range(0, count, 100):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                e.to_bytes(), message_id=e.id, type=e.type, timestamp=e.occurred_at
                            ),
                            routing_key=e.type,
                        )
                        for e in events[batch : batch + 100]
                    )
                )
            published = time.time()
        deadline = time.monotonic() + 300
        # Poll the cheap counter, not the growing message list, so the polling does not load the sandbox.
        while time.monotonic() < deadline:
            if await _sends(http, sandbox) - baseline >= count:
                break
            await asyncio.sleep(0.5)
        async with http.get(f"{sandbox}/sandbox/messages") as resp:
            messages = (await resp.json())["messages"]
    assert len(messages) == count, f"{len(messages)} of {count} messages arrived"
    received = sorted(m["received_at"] for m in messages)
    latencies = sorted((r - started) * 1000 for r in received)
    return {
        "rate": count / (received[-1] - started),
        "publish_s": published - started,
        "p50_ms": statistics.median(latencies),
        "last_ms": latencies[-1],
    }


async def measure(
    count: int,
    sandbox: str,
    worker: str,
    keyset: Any,
    amqp_url: str,
    mongo_url: str,
    db_name: str,
    app_id: str,
) -> tuple[float, dict[str, float], float]:
    await wait_http(f"{sandbox}/healthz")
    await wait_http(f"{worker}/readyz")
    await ceiling(sandbox, keyset, 200)  # warm-up
    raw = await ceiling(sandbox, keyset, count)
    await end_to_end(amqp_url, sandbox, app_id, 100)  # warm-up
    e2e = await end_to_end(amqp_url, sandbox, app_id, count)
    db_rate = await database_bound(mongo_url, db_name, app_id, count)
    return raw, e2e, db_rate


def main(count: int, prefetch: int) -> int:
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    (tmp / "db").mkdir()
    mongo_url, mongo = start_mongo(tmp / "db")
    vhost = f"bench-notify-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    keyset = generate_keyset()
    write_keyset(keyset, tmp / "wechat")
    sandbox_port, worker_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    base_env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "sandbox.wechat"],
                env={**base_env, **sandbox_env(tmp / "wechat", port=sandbox_port)},
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )
        )
        db_name = f"bench_{uuid.uuid4().hex[:8]}"
        application_id = str(uuid.uuid4())
        with MongoClient(mongo_url, serverSelectionTimeoutMS=30000) as client:
            client[db_name]["applications"].insert_one(
                {
                    "_id": application_id,
                    "owner_openid": OPENID,
                    "school_code": "10487",
                    "verified_code": {"masked_name": "赵**", "school_name": "示范大学"},
                }
            )
        worker_env = {
            **base_env,
            **client_env(keyset, api_base=sandbox),
            "MONGO_URL": mongo_url,
            "MONGO_DB": db_name,
            "AMQP_URL": amqp_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(worker_port),
            "NOTIFY_SEND_RATE": "0",
            "BUS_PREFETCH": str(prefetch),
        }
        children.append(subprocess.Popen([sys.executable, "-m", "services.notify"], env=worker_env, cwd=ROOT))
        raw, e2e, db_rate = asyncio.run(
            measure(
                count,
                sandbox,
                f"http://127.0.0.1:{worker_port}",
                keyset,
                amqp_url,
                mongo_url,
                db_name,
                application_id,
            )
        )
    finally:
        for child in reversed(children):
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if mongo is not None:
            mongo.terminate()
            mongo.wait(15)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, check=False)

    ratio = e2e["rate"] / raw
    met = ratio >= 0.5
    section = "\n".join(
        [
            "## Notify: subscribe messages end to end (`make bench-notify`)",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} CPUs, "
            f"{platform.machine()}; Python {platform.python_version()}; load average before the run "
            f"{load:.1f} (other work on the machine moves every figure)",
            f"- {count} `review.decided.v1` events; one notify worker (`BUS_PREFETCH` {prefetch}, send rate 0 = "
            f"unlimited), the sandbox in its own process, RabbitMQ, database "
            f"{'nx-27017' if mongo is not None else 'MONGO_URL'}; everything shares the machine's cores",
            "",
            "| measure | messages/s |",
            "|---|---:|",
            f"| sandbox raw `subscribe/send`, {IN_FLIGHT} in flight (ceiling) | {raw:.0f} |",
            f"| end to end: first publish → last sandbox receipt | {e2e['rate']:.0f} |",
            f"| database alone: one notification's 2 reads + 4 writes, {IN_FLIGHT} in flight | {db_rate:.0f} |",
            "",
            f"- end to end / ceiling: **{ratio:.2f}** (target ≥ 0.50: {'met' if met else 'missed'})",
            f"- publishing took {e2e['publish_s']:.2f} s; half the messages had arrived {e2e['p50_ms']:.0f} ms "
            f"after the first publish, the last {e2e['last_ms']:.0f} ms",
            f"- the database alone caps the worker at about {db_rate:.0f} notifications/s: the end-to-end rate "
            f"reaches {e2e['rate'] / db_rate:.0%} of that bound",
        ]
    )
    print(section)
    write_section("notify", section)
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="events per measurement (default 2000)")
    parser.add_argument(
        "--prefetch", type=int, default=32, help="BUS_PREFETCH of the worker (its default: 32)"
    )
    args = parser.parse_args()
    sys.exit(main(args.count, args.prefetch))
