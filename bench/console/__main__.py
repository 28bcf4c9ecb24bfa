"""`make bench-console`: time from "approve" to the next case displayed in the console's web page, in
Debian's headless chromium (driven by playwright), beside the bare API calls the page makes for it.

Everything runs here as in `make run`: nx-27017 (a throw-away data directory), RabbitMQ (a throw-away
vhost), the gateway as its own process (`python -m services.gateway`). Seeded straight into the
database: two schools, their rosters with admission photos (640x480 JPEG), and N+1 `in_review`
applications each with a standardised photo (480x640 JPEG): one school for the page's reviewer, the
other for the API client. Two figures, same run:

- **page**: a reviewer signed in through the page presses A N times; each time the page's own
  `performance.measure("console.decision-to-next-case")` spans the key to the next case shown with
  both photos decoded. The driver-side time (key sent over CDP until the page says the case is ready)
  is given too; it adds the driver's round trips.
- **bare API**: what the page does per case, from Python (aiohttp, up to 6 connections like a
  browser): the decision POST, the next-case POST, then the two photo GETs at once; timed as a whole
  and per call.

Target: page median under 300 ms. Results go to bench/RESULTS.md between the bench-console markers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
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
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from PIL import Image

from bench.net import add_vhost, free_port, wait_http
from bench.results import write_section
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
PAGE_SCHOOL, API_SCHOOL = "10487", "10001"
PASSWORD = "bench console password"
TARGET_MS = 300.0
MEASURE = "console.decision-to-next-case"


def photo(size: tuple[int, int], seed: int) -> bytes:
    """A JPEG of a realistic size for its dimensions (textured, not flat)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(90, 200, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 3), np.float32)
    noisy = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, format="JPEG", quality=85)
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {max(values):.1f}"


async def seed(mongo_url: str, db_name: str, per_school: int) -> None:
    """Schools, rosters with admission photos, in_review applications, two reviewers (store-level writes)."""
    from services.gateway.console.operators import Operators, Role
    from services.gateway.roster import import_roster
    from services.gateway.schools import Schools, demo_school
    from shared.blobs import BlobStore
    from shared.config import Settings
    from shared.db import Database
    from shared.events import new_id, utcnow

    database = Database(Settings(mongo_url=mongo_url, mongo_db=db_name))
    blobs = BlobStore(database)
    admission = photo((640, 480), 1)
    standardised = photo((480, 640), 2)
    start = utcnow() - timedelta(hours=1)
    for school_code, name in ((PAGE_SCHOOL, "示范大学"), (API_SCHOOL, "对照大学")):
        await Schools(database).put(demo_school(school_code, name))
        numbers = [f"21{school_code[-3:]}{i:05d}" for i in range(per_school)]
        rows = [
            {
                "name": f"学生{i:04d}",
                "student_number": number,
                "id_last4": "1234",
                "class_name": "2021级口腔医学16班",
                "level": "专科",
                "onsite_shot": "否",
            }
            for i, number in enumerate(numbers)
        ]
        report = await import_roster(database, blobs, school_code, rows, dict.fromkeys(numbers, admission))
        assert not report.rejected, report.rejected
        documents = []
        for i, number in enumerate(numbers):
            application_id, photo_id = new_id(), new_id()
            blob_id = await blobs.put(standardised, filename=f"std-{photo_id}", content_type="image/jpeg")
            at = start + timedelta(seconds=i)
            documents.append(
                {
                    "_id": application_id,
                    "state": "in_review",
                    "version": 1,
                    "created_at": at,
                    "updated_at": at,
                    "school_code": school_code,
                    "student_id": f"{school_code}:{number}",
                    "owner_openid": f"o-bench-{application_id}",
                    "photos": {
                        photo_id: {
                            "status": "standardized",
                            "raw_blob_id": blob_id,
                            "standardized_blob_id": blob_id,
                            "uploaded_at": at,
                            "measures": [
                                {"code": "face_count", "raw": 1.0, "score": 100.0, "passed": True},
                                {"code": "sharpness", "raw": 0.8, "score": 92.0, "passed": True},
                            ],
                        }
                    },
                    "submission": {
                        "submission_id": new_id(),
                        "photo_id": photo_id,
                        "submitted_at": at,
                        "count": 1,
                    },
                    "match": {"score": 88.0 + i % 10, "passed": True, "photo_id": photo_id},
                    "resubmissions_left": 2,
                    "outbox": {},
                    "outbox_pending": 0,
                }
            )
        await database.db["applications"].insert_many(documents)
        await Operators(database).create(
            f"reviewer-{school_code}@example.com", PASSWORD, Role.REVIEWER, [school_code]
        )
    await database.close()


class ApiClient:
    """The page's calls from Python: cookies by hand (plain-HTTP 127.0.0.1), the CSRF header echoed."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.http = http
        self.cookies: dict[str, str] = {}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method != "GET":
            headers["X-CSRF-Token"] = self.cookies.get("console_csrf", "")
        async with self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs) as resp:
            for header in resp.headers.getall("Set-Cookie", []):
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            body = await resp.json() if resp.content_type == "application/json" else await resp.read()
            return resp.status, body


async def bare_api(base_url: str, cases: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"total": [], "decision": [], "next": [], "photos": []}
    connector = aiohttp.TCPConnector(limit=6)  # a browser's connections per host
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        client = ApiClient(base_url, http)
        status, body = await client.call(
            "POST",
            "/console/api/v1/login",
            json={"email": f"reviewer-{API_SCHOOL}@example.com", "password": PASSWORD},
        )
        assert status == 200, body
        status, body = await client.call("POST", "/console/api/v1/reviews/next", json={})
        current = body["case"]
        for _ in range(cases):
            started = time.perf_counter()
            status, body = await client.call(
                "POST",
                f"/console/api/v1/reviews/{current['application_id']}/decision",
                json={"decision": "approved", "reason_code": None, "note": ""},
            )
            assert status == 200, body
            decided = time.perf_counter()
            status, body = await client.call("POST", "/console/api/v1/reviews/next", json={})
            assert status == 200 and body["case"], body
            current = body["case"]
            claimed = time.perf_counter()
            images = await asyncio.gather(
                client.call("GET", current["submitted_photo"]["image_url"]),
                client.call("GET", current["admission_photo_url"]),
            )
            assert all(s == 200 and len(b) > 1000 for s, b in images)
            done = time.perf_counter()
            timings["decision"].append((decided - started) * 1000)
            timings["next"].append((claimed - decided) * 1000)
            timings["photos"].append((done - claimed) * 1000)
            timings["total"].append((done - started) * 1000)
    return timings


async def page_run(base_url: str, cases: int) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    driver_ms: list[float] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await (await browser.new_context(base_url=base_url)).new_page()
        await page.goto(f"{base_url}/console/")
        await page.fill("input[name=email]", f"reviewer-{PAGE_SCHOOL}@example.com")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("form.login button[type=submit]")
        review = "section.page[data-page=review]"
        await page.wait_for_selector(f"{review}[data-ready='1'][data-case-id]", timeout=30_000)
        for _ in range(cases):
            before = await page.get_attribute(review, "data-case-id")
            started = time.perf_counter()
            await page.keyboard.press("a")
            await page.wait_for_function(
                """(before) => {
                    const s = document.querySelector("section.page[data-page=review]");
                    return s && s.dataset.ready === "1" && s.dataset.caseId && s.dataset.caseId !== before;
                }""",
                arg=before,
                polling="raf",
                timeout=30_000,
            )
            driver_ms.append((time.perf_counter() - started) * 1000)
        measures = await page.evaluate(
            "(name) => performance.getEntriesByName(name).map((m) => m.duration)", MEASURE
        )
        await browser.close()
    page_ms = [float(m) for m in measures]
    if len(page_ms) != cases:
        raise RuntimeError(f"the page measured {len(page_ms)} of {cases} decisions")
    return {"page": page_ms, "driver": driver_ms}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(
            "Debian's chromium is missing: apt-get install -y chromium (make bench-console does it as root)"
        )
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    mongo_port, http_port = free_port(), free_port()
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    add_vhost(vhost)
    nx = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("nx-27017")),
            "--data-dir",
            str(work),
            "--host",
            "127.0.0.1",
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
    base = f"http://127.0.0.1:{http_port}"
    gateway = None
    gateway_log = (work / "gateway.log").open("w")
    try:
        time.sleep(1.5)
        seeding = time.perf_counter()
        asyncio.run(seed(mongo_url, "bench", args.cases + 1))
        seeded_s = time.perf_counter() - seeding
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
        gateway = subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=gateway_log,
        )
        asyncio.run(wait_http(f"{base}/readyz"))
        page = asyncio.run(page_run(base, args.cases))
        api = asyncio.run(bare_api(base, args.cases))
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
        gateway_log.close()
        nx.terminate()
        nx.wait(10)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    page_median = statistics.median(page["page"])
    api_median = statistics.median(api["total"])
    verdict = "met" if page_median < TARGET_MS else "NOT met"
    chromium = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout.strip()
    section = "\n".join(
        [
            "## Console: approve to the next case displayed (`make bench-console`)",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs, "
            f"{platform.processor() or platform.machine()}; Python {platform.python_version()}; {chromium}, headless",
            f"- {args.cases} cases approved with the A key by one reviewer in the page, then {args.cases} by the "
            "API client; the gateway in its own process, nx-27017, RabbitMQ; chromium, the driver and the "
            "server share the cores. Photos per case: standardised 480x640 "
            f"({len(photo((480, 640), 2)) // 1024} KiB) and admission 640x480 "
            f"({len(photo((640, 480), 1)) // 1024} KiB); seeding {2 * (args.cases + 1)} cases took {seeded_s:.0f} s",
            "",
            "| what | median ms | p95 ms | max ms |",
            "|---|---:|---:|---:|",
            f"| page: A key → next case shown, both photos decoded (`performance.measure`) | {stats(page['page'])} |",
            f"| driver: key sent over CDP → page reports the case ready | {stats(page['driver'])} |",
            f"| bare API: decision + next + both photos (Python client) | {stats(api['total'])} |",
            f"| – decision POST | {stats(api['decision'])} |",
            f"| – next-case POST | {stats(api['next'])} |",
            f"| – the two photo GETs, at once | {stats(api['photos'])} |",
            "",
            f"- page / bare API (medians): **{page_median / api_median:.2f}**; page median {page_median:.0f} ms: "
            f"target < {TARGET_MS:.0f} ms {verdict}. The page makes the same four calls in the same order "
            "(the next case cannot be claimed before the decision releases the current one, so nothing is "
            "prefetched); the rest is rendering and decoding two JPEGs.",
        ]
    )
    print(section)
    if not args.no_write:
        write_section("console", section)
    return 0 if page_median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
