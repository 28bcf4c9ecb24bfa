"""`make demo`: one made-up student through the whole journey, over HTTP, against `make run`.

Imports the student into the demo school's roster (with an admission photo made from a face that a
package ships: deploy/local/faces.py), has the sandbox's CHSI stand-in mint their collection code
(`POST /sandbox/chsi/codes`, encrypted with the development key), then logs in through the WeChat
sandbox, submits the code, confirms, pays (the sandbox plays the student's WeChat Pay), uploads a photo,
submits it and polls the status, printing each step. Steps whose service has not been built yet are reported as such, not faked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deploy.local.faces import admission_photo, student_photo  # noqa: E402
from services.gateway.roster import import_roster  # noqa: E402
from shared.blobs import BlobStore  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.db import Database  # noqa: E402

GATEWAY = os.environ.get("DEMO_GATEWAY", "http://127.0.0.1:8080")
SANDBOX = os.environ.get("DEMO_SANDBOX", "http://127.0.0.1:8090")
SCHOOL = "10487"
# A new made-up student every run, so the demo can be run again and again against one database.
NUMBER = f"21{secrets.randbelow(10**8):08d}"
OPENID = f"o-demo-{secrets.token_hex(6)}"


def step(title: str, detail: Any = "") -> None:
    text = json.dumps(detail, ensure_ascii=False) if not isinstance(detail, str) else detail
    print(f"\n== {title}\n   {text[:600]}", flush=True)


async def code_png(http: aiohttp.ClientSession, student: dict[str, str]) -> bytes:
    """The student's 图像采集码 as CHSI would issue it: the sandbox's CHSI stand-in (sandbox/wechat/chsi.py)."""
    async with http.post(f"{SANDBOX}/sandbox/chsi/codes", json=student) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 201:
            raise SystemExit(f"minting the collection code failed: {resp.status} {answer}")
    return base64.b64decode(answer["png_base64"])


async def seed_roster() -> None:
    database = Database(Settings(mongo_url=os.environ.get("MONGO_URL", Settings().mongo_url)))
    row = {
        "name": "赵小明",
        "student_number": NUMBER,
        "id_last4": "2(3)",
        "class_name": "2021级口腔医学16班",
        "level": "专科",
        "onsite_shot": "否",
    }
    report = await import_roster(database, BlobStore(database), SCHOOL, [row], {NUMBER: admission_photo()})
    await database.close()
    step(
        "roster imported",
        {"created": report.created, "updated": report.updated, "rejected": len(report.rejected)},
    )


async def call(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> Any:
    async with http.request(method, f"{GATEWAY}{path}", **kwargs) as resp:
        body = await resp.json(content_type=None) if resp.content_type == "application/json" else None
        if resp.status >= 400:
            raise SystemExit(f"{method} {path} -> {resp.status} {body}")
        return body


async def wait_state(http: aiohttp.ClientSession, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await call(http, "GET", "/api/v1/application")
        if status["state"] in states or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.5)


async def main() -> int:
    await seed_roster()
    record = {
        "name": "赵小明",
        "student_number": NUMBER,
        "id_last4": "2(3)",
        "school_code": SCHOOL,
        "school_name": "示范大学",
        "education_category": "普通本专科",
        "level": "专科",
        "department": "临床医学院",
        "class_name": "2021级口腔医学16班",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{SANDBOX}/sandbox/login-codes", json={"openid": OPENID}) as resp:
            login_code = (await resp.json())["code"]
        login = await call(http, "POST", "/api/v1/login", json={"code": login_code})
        http.headers["Authorization"] = f"Bearer {login['token']}"
        step("1-2 logged in with wx.login", {"bound": login["bound"]})
        async with http.post(f"{SANDBOX}/sandbox/phone-codes", json={"phone": "13812345678"}) as resp:
            phone_code = (await resp.json())["code"]
        step("2 phone authorised", await call(http, "POST", "/api/v1/me/phone", json={"code": phone_code}))
        school = await call(http, "GET", f"/api/v1/schools/{SCHOOL}")
        step("3 notice (温馨提示)", school["notice"])
        form = aiohttp.FormData()
        for k, v in {
            "name": "赵小明",
            "student_number": NUMBER,
            "id_last4": "2(3)",
            "agreed": "true",
        }.items():
            form.add_field(k, v)
        form.add_field("image", await code_png(http, record), filename="code.png", content_type="image/png")
        scan = await call(http, "POST", "/api/v1/codes", data=form)
        result = await call(http, "GET", f"/api/v1/codes/{scan['scan_id']}?wait=20")
        step("4-5 collection code", {k: result.get(k) for k in ("status", "student", "reason", "message")})
        if result["status"] != "decoded":
            return 1
        step("5 confirmed", await call(http, "POST", "/api/v1/application/confirm", json={}))
        order = await call(http, "POST", "/api/v1/orders", headers={"Idempotency-Key": "demo-order-1"})
        step("6 order placed", {"amount_fen": order["amount_fen"], "package": order["payment"]["package"]})
        async with http.post(f"{SANDBOX}/sandbox/pay/{order['out_trade_no']}", json={}) as resp:
            step("6 paid in WeChat (sandbox)", await resp.json(content_type=None))
        status = await wait_state(http, {"paid"}, timeout=30)
        step("6 payment notification applied", {"state": status["state"], "order": status["order"]})
        form = aiohttp.FormData()
        form.add_field("source", "camera")
        form.add_field("image", student_photo(), filename="photo.jpg", content_type="image/jpeg")
        photo = await call(http, "POST", "/api/v1/photos", data=form)
        step("7-8 photo uploaded", photo)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = await call(http, "GET", "/api/v1/application")
            current = next(p for p in status["photos"] if p["photo_id"] == photo["photo_id"])
            if current["status"] != "processing":
                break
            await asyncio.sleep(0.5)
        step("8 quality check and standardisation", current)
        if current["status"] == "processing":
            step("the imaging service is not running yet", "the journey stops here until it lands")
            return 0
        if current["status"] != "standardized":
            # The photo (deploy/local/faces.py) passes every check; should a threshold change refuse
            # it, the demo ends where a real student would be asked to retake the photo.
            step(
                "8 the student is asked to retake",
                {"reasons": current["reasons"], "messages": current["messages"]},
            )
            status = await call(http, "GET", "/api/v1/application")
            step(
                "final status",
                {"state": status["state"], "next": status["next"], "last_failure": status["last_failure"]},
            )
            return 0
        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}
        step("9-10 submitted", await call(http, "POST", "/api/v1/submissions", json=body))
        status = await wait_state(http, {"in_review", "match_failed", "registrar_review"}, timeout=60)
        step("11 face comparison", {"state": status["state"], "match": status["match"]})
        step(
            "final status",
            {"state": status["state"], "next": status["next"], "last_failure": status["last_failure"]},
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
