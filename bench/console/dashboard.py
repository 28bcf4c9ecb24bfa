"""`python -m bench.console.dashboard`: the console dashboard's cost per refresh, before and after the
charts (issue 17.1), and the page's time to first chart.

A throw-away nx-27017 and RabbitMQ vhost with 20 queues (the 15 of the topology and 5 more, some with
messages) and N applications (20,000 by default) over 20 schools, 2,000 notifications and 600 review
decisions in the last hour. The figures are computed in this process, with no cache, interleaved:

- **before**: what the dashboard computed until now: the plain queue listing, the outbox backlog, the
  funnel scan and the notify failures; the answer without the new fields;
- **after**: the same plus the history listing (`lengths_age`/`msg_rates_age`, one point a minute for an
  hour), the review decisions per minute from the audit log, and the answer with `history`,
  `throughput`, `outbox_history` and dead letters by queue.

Per refresh: this process's CPU time, nx-27017's CPU time (from /proc), the wall time, and the JSON
bytes an admin receives. Then the gateway runs as its own process and headless chromium opens the
dashboard: the time from navigation start to `performance.mark("console.first-chart")`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench.net import add_vhost, free_port, wait_http
from bench.results import write_section
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench dashboard password"
STATES = [
    "code_verified",
    "confirmed",
    "paid",
    "submitted",
    "match_failed",
    "in_review",
    "approved",
    "rejected",
]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def seed(mongo_url: str, amqp_url: str, applications: int) -> None:
    import aio_pika

    from services.gateway.console.audit import INDEXES as AUDIT_INDEXES
    from services.gateway.console.operators import Operators, Role
    from shared.config import Settings
    from shared.db import Database
    from shared.events import new_id, utcnow
    from shared.topology import CONSUMERS, dead_queue, retry_queue

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    names = [q for c in CONSUMERS for q in (c, retry_queue(c), dead_queue(c))]
    names += [f"bench-extra-{i}" for i in range(20 - len(names))]
    for i, name in enumerate(names):
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        for n in range(i % 4 * 5):
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", message_id=f"{name}-{n}"), routing_key=name
            )
    await connection.close()

    database = Database(Settings(mongo_url=mongo_url, mongo_db="bench"))
    now = utcnow()
    docs = [
        {
            "_id": new_id(),
            "school_code": f"1{i % 20:04d}",
            "state": STATES[i % len(STATES)],
            "student_id": f"1{i % 20:04d}:{i:010d}",
            "version": 1,
            "created_at": now,
            "updated_at": now - timedelta(minutes=i % 600),
            "outbox": {},
            "outbox_pending": 0,
        }
        for i in range(applications)
    ]
    for start in range(0, len(docs), 1000):
        await database.db["applications"].insert_many(docs[start : start + 1000])
    await database.db["notifications"].insert_many(
        [
            {
                "_id": new_id(),
                "school_code": f"1{i % 20:04d}",
                "state": "failed",
                "errcode": 43101,
                "updated_at": now,
            }
            for i in range(2000)
        ]
    )
    await database.db["audit_log"].insert_many(
        [
            {
                "_id": new_id(),
                "at": now - timedelta(seconds=6 * i),
                "action": "review.decided",
                "outcome": "ok",
                "target": {"school_code": f"1{i % 20:04d}", "application_id": new_id()},
            }
            for i in range(600)
        ]
    )
    await database.ensure_indexes({"audit_log": AUDIT_INDEXES["audit_log"]})
    await Operators(database).create("admin@bench.example", PASSWORD, Role.ADMIN, [])
    await database.close()


async def refreshes(
    mongo_url: str, amqp_url: str, rounds: int, nx_pid: int
) -> dict[str, dict[str, list[float]]]:
    import aiohttp

    from services.gateway.app import OUTBOX_COLLECTIONS
    from services.gateway.config import GatewaySettings
    from services.gateway.console import dashboard as d
    from services.gateway.console.operators import Operator, Role
    from services.gateway.funnel import count_by_school_and_state
    from shared.db import Database
    from shared.events import utcnow
    from shared.outbox import pending
    from shared.topology import CONSUMERS, dead_queue

    settings = GatewaySettings(
        mongo_url=mongo_url, mongo_db="bench", amqp_url=amqp_url, console_dashboard_cache_s=0
    )
    database = Database(settings)
    admin = Operator("bench", "admin@bench.example", Role.ADMIN, ())
    collections = OUTBOX_COLLECTIONS
    board = d.Dashboard(settings, database, collections)
    results: dict[str, dict[str, list[float]]] = {
        side: {"cpu_ms": [], "nx_cpu_ms": [], "wall_ms": [], "bytes": []} for side in ("before", "after")
    }
    async with aiohttp.ClientSession() as http:
        board.http = http

        async def before() -> int:
            figures, depth = await d.fetch_queues(http, board.target, 5.0)
            backlog, funnel, failures = await asyncio.gather(
                pending(database, collections),
                count_by_school_and_state(database),
                d.notify_failures(database, settings.console_dashboard_notify_window_h),
            )
            dead = sum(depth.get(dead_queue(c), 0) for c in CONSUMERS)
            # The answer as it was (the old DashboardView's fields, nothing new).
            body = {
                "generated_at": utcnow().isoformat(),
                "queues": {"available": True, "error": None, "items": [f.model_dump() for f in figures]},
                "outbox": {
                    "pending_events": backlog.events,
                    "aggregates_pending": backlog.aggregates,
                    "oldest_age_s": backlog.oldest_age_s,
                },
                "funnel": [
                    {"school_code": s, "state": t, "count": n} for (s, t), n in sorted(funnel.items())
                ],
                "notify_failures": [
                    {"code": c, "count": g.count, "last_at": g.last_at.isoformat() if g.last_at else None}
                    for (_, c), g in failures.items()
                ],
                "dead_letters": {"count": dead},
            }
            return len(json.dumps(body, ensure_ascii=False).encode())  # as json_response writes it

        async def after() -> int:
            board.broker = d.Cached(0, board._broker)
            board.store = d.Cached(0, board._store)
            view = await board.view(admin)
            return len(json.dumps(view.model_dump(mode="json"), ensure_ascii=False).encode())

        for _ in range(2):  # warm both paths (connections, caches of the database)
            await before()
            await after()
        for _ in range(rounds):
            for side, run in (("before", before), ("after", after)):
                cpu, nx, wall = time.process_time(), proc_cpu_s(nx_pid), time.perf_counter()
                size = await run()
                results[side]["cpu_ms"].append((time.process_time() - cpu) * 1000)
                results[side]["nx_cpu_ms"].append((proc_cpu_s(nx_pid) - nx) * 1000)
                results[side]["wall_ms"].append((time.perf_counter() - wall) * 1000)
                results[side]["bytes"].append(float(size))
    await database.close()
    return results


async def first_chart(base: str, loads: int) -> tuple[list[float], list[float]]:
    """Per load: navigation start to the first chart, and to the dashboard answer's last byte (NaN: none in 60 s)."""
    from playwright.async_api import async_playwright

    times: list[float] = []
    api_times: list[float] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (
                await browser.new_context(base_url=base, viewport={"width": 1280, "height": 1000})
            ).new_page()
            await page.goto(f"{base}/console/")
            await page.fill("input[name=email]", "admin@bench.example")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form.login button[type=submit]")
            await page.wait_for_selector("nav a")
            for _ in range(loads):
                await page.goto(f"{base}/console/?load={uuid.uuid4().hex}#/dashboard")
                # Polled with evaluate: wait_for_function evaluates a string in the page, which the CSP forbids.
                started = time.perf_counter()
                mark = None
                while time.perf_counter() - started < 60 and mark is None:
                    mark = await page.evaluate(
                        "(performance.getEntriesByName('console.first-chart')[0] || {}).startTime ?? null"
                    )
                    if mark is None:
                        await asyncio.sleep(0.05)
                answered = await page.evaluate(
                    "(performance.getEntriesByType('resource').find(e => e.name.includes('/dashboard')) || {})"
                    ".responseEnd ?? null"
                )
                times.append(float(mark) if mark is not None else float("nan"))
                api_times.append(float(answered) if answered is not None else float("nan"))
        finally:
            await browser.close()
    return times, api_times


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applications", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    mongo_port, http_port = free_port(), free_port()
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    add_vhost(vhost)
    nx = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("nx-27017")),
            "--data-dir", str(work), "--host", "127.0.0.1", "-p", str(mongo_port),
            "--log-file", str(work / "nx.log"), "--pid-file", str(work / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mongo_url = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    base = f"http://127.0.0.1:{http_port}"
    gateway = None
    try:
        time.sleep(1.5)
        started = time.perf_counter()
        asyncio.run(seed(mongo_url, amqp_url, args.applications))
        seeded_s = time.perf_counter() - started
        time.sleep(6)  # the broker's statistics of the new queues (every 5 s)
        figures = asyncio.run(refreshes(mongo_url, amqp_url, args.rounds, nx.pid))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MONGO_URL": mongo_url,
            "MONGO_DB": "bench",
            "AMQP_URL": amqp_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(http_port),
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "CONSOLE_COOKIE_SECURE": "false",
        }
        charts_all: list[float] = []
        answers_all: list[float] = []
        if args.loads > 0:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "services.gateway"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            asyncio.run(wait_http(f"{base}/readyz"))
            charts_all, answers_all = asyncio.run(first_chart(base, args.loads))
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
        nx.terminate()
        nx.wait(10)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    b, a = figures["before"], figures["after"]
    charts = [t for t in charts_all if t == t] or [float("nan")]
    answers = [t for t in answers_all if t == t] or [float("nan")]
    missed = len(charts_all) - len([t for t in charts_all if t == t])

    def line(label: str, key: str, digits: int = 1) -> str:
        before, after = med(b[key]), med(a[key])
        return f"| {label} | {before:.{digits}f} | {after:.{digits}f} | {after / max(before, 0.001):.2f} |"

    rows = [
        line("gateway CPU per refresh (ms)", "cpu_ms"),
        line("nx-27017 CPU per refresh (ms)", "nx_cpu_ms"),
        line("wall per refresh (ms)", "wall_ms"),
        line("answer to an admin (bytes)", "bytes", 0),
    ]
    section = "\n".join(
        [
            "## Console: the dashboard per refresh, before and after the charts (`python -m bench.console.dashboard`)",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs, "
            f"{platform.machine()}, shared with 7 other busy helpers (figures are CPU time where possible); "
            f"Python {platform.python_version()}",
            f"- {args.applications} applications over 20 schools, 2,000 failed notifications, "
            f"600 review decisions in the last hour, 20 queues (RabbitMQ's management API, one vhost); "
            f"seeding took {seeded_s:.0f} s. No cache: each refresh computes "
            f"everything, {args.rounds} rounds interleaved before/after, medians.",
            "",
            "| per refresh | before | after | after / before |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            (
                f"- the page's time to first chart (navigation start to `console.first-chart`, {len(charts)} loads, "
                f"gateway in its own process, headless chromium): median {med(charts):.0f} ms, max {max(charts):.0f} ms "
                f"(the dashboard's answer complete at median {med(answers):.0f} ms); loads with no chart within 60 s: {missed}"
            )
            if charts_all
            else "- the page's time to first chart: not measured in this run (`--loads 0`)",
            "- after = the plain listing plus the history listing (asked at once), the decisions per minute from the "
            "audit log, and the answer with `history` (61 points × 4 series × 20 queues), `throughput`, `outbox_history`. "
            "With `CONSOLE_DASHBOARD_CACHE_S` (2 s) this is paid at most once per period per gateway process, "
            "however many operators look.",
        ]
    )
    print(section)
    if not args.no_write:
        write_section("console-dashboard", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
