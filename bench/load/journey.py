"""The simulated students and the scripted operator: the whole journey over HTTP, as deploy/local/demo.py.

A student: logs in through the WeChat sandbox, uploads the CHSI collection code (a QR image made with the
development key), confirms, orders and pays (the sandbox plays WeChat Pay), uploads a photo (a variant of
deploy/local/faces.py's bare-headed portrait), waits until it is standardised, submits it, and waits for
the face comparison and the operator's decision; "notified" is the sandbox receiving the review-result
subscribe message (`GET /sandbox/messages`). Every step's time is recorded (`Journey.at`).

Like the real mini-program, a student retries what failed because the system was briefly away
(connection refused, 5xx, 503 while a service restarts), with the same `Idempotency-Key`, so a retry
never creates a second scan, order, photo or submission; anything else ends the journey as failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import aiohttp

from deploy.local import run as local
from deploy.local.faces import admission_photo, student_photo
from sandbox.wechat.chsi import mint_record
from services.codec.cipher import cipher_from_config
from services.codec.payload import ChsiRecord

SCHOOL = "10487"
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
GIVEN = "小明红华强丽军伟芳娜敏静磊洋勇艳杰娟涛超"
REVIEW_TEMPLATE = "demo_review_result"
RETRY_FOR_S = 240.0  # a student keeps retrying a step this long while the system is away
RETAKES = 2  # photos retaken after a refusal (a bare-headed variant fails a check about once in 400)


class JourneyFailed(Exception):
    """The system refused a step for good (an answer a retry cannot change)."""


@dataclass(frozen=True)
class Person:
    index: int
    name: str
    number: str
    id_last4: str
    openid: str

    @classmethod
    def make(cls, index: int, run_tag: str) -> Person:
        name = SURNAMES[index % len(SURNAMES)] + GIVEN[(index // len(SURNAMES)) % len(GIVEN)]
        if index >= len(SURNAMES) * len(GIVEN):
            name += GIVEN[index % len(GIVEN)]
        # 28 characters, as WeChat's openids; run_tag keeps runs on one database apart.
        openid = f"oLoad{run_tag}{index:08d}".ljust(28, "0")[:28]
        return cls(index, name, f"25{index:08d}", f"{index % 10000:04d}", openid)

    @property
    def phone(self) -> str:
        """A mobile number of this student's own (139 + 8 digits): it must never reach a log unmasked."""
        return f"139{self.index:08d}"

    def roster_row(self) -> dict[str, str]:
        return {
            "name": self.name,
            "student_number": self.number,
            "id_last4": self.id_last4,
            "class_name": "2025级口腔医学1班",
            "level": "本科",
            "onsite_shot": "否",
        }

    def record(self) -> ChsiRecord:
        return ChsiRecord(
            chsi_id=f"load-{self.index:06d}",
            name=self.name,
            student_number=self.number,
            id_masked="*" * 14 + self.id_last4,
            school_code=SCHOOL,
            school_name="示范大学",
            education_category="普通本专科",
            level="本科",
            department="临床医学院",
            class_name="2025级口腔医学1班",
        )


def code_png(record: ChsiRecord, scale: int = 6, border: int = 4) -> bytes:
    """The student's collection code as a clean PNG, minted by the CHSI stand-in (sandbox/wechat/chsi.py)
    with the development key; called directly, not over HTTP, so a roster of hundreds is made before the run."""
    key = (local.VAR / "codec-cipher.key").read_text()
    return mint_record(record, cipher_from_config("aes-256-gcm", key), scale=scale, border=border).png


@dataclass
class Kit:
    """What a student brings, made before the run so that making it costs nothing during it."""

    person: Person
    code: bytes
    photo: bytes

    @classmethod
    def make(cls, person: Person) -> Kit:
        return cls(person, code_png(person.record()), student_photo(person.index + 1))


def admission_photos(people: list[Person]) -> dict[str, bytes]:
    photo = admission_photo()
    return {p.number: photo for p in people}


@dataclass
class Journey:
    """One student's run: the time of every step reached (epoch seconds), and how it ended."""

    person: Person
    started: float = 0.0
    at: dict[str, float] = field(default_factory=dict)
    application_id: str | None = None
    photo_id: str | None = None
    out_trade_no: str | None = None
    outcome: str = "running"  # running, done, failed, timeout
    error: str | None = None
    retries: int = 0
    retakes: list[str] = field(default_factory=list)  # reasons the photos retaken were refused
    inputs: list[str] = field(default_factory=list)  # steps the system accepted (for the audit)

    def mark(self, step: str) -> None:
        self.at.setdefault(step, time.time())

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.person.index,
            "number": self.person.number,
            "openid": self.person.openid,
            "application_id": self.application_id,
            "photo_id": self.photo_id,
            "out_trade_no": self.out_trade_no,
            "outcome": self.outcome,
            "error": self.error,
            "retries": self.retries,
            "retakes": self.retakes,
            "inputs": self.inputs,
            "started": self.started,
            "at": self.at,
        }


# The status long poll (`GET /api/v1/application?wait=N&since=...`, services/gateway/waiters.py).
LONG_POLL_S = 20.0

Transient = (aiohttp.ClientError, OSError, TimeoutError, asyncio.TimeoutError)


class Student:
    def __init__(
        self,
        kit: Kit,
        gateway: str,
        sandbox: str,
        http: aiohttp.ClientSession,
        poll_s: float,
        long_poll: bool = True,
    ) -> None:
        self.kit = kit
        self.gateway = gateway
        self.sandbox = sandbox
        self.http = http
        self.poll_s = poll_s
        self.long_poll = long_poll
        self.token = ""
        self.journey = Journey(kit.person)

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, url, timeout=aiohttp.ClientTimeout(total=30), **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.read()

    async def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any
    ) -> tuple[int, Any]:
        """One API call, retried while the answer says the system is away; `kwargs` may hold a
        `form` factory (multipart bodies cannot be sent twice)."""
        form: Callable[[], aiohttp.FormData] | None = kwargs.pop("form", None)
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                if form is not None:
                    kwargs["data"] = form()
                status, body = await self._send(method, f"{self.gateway}{path}", headers=headers, **kwargs)
            except Transient as exc:
                status, body = 0, repr(exc)
            if status in ok:
                return status, body
            retry_after = 1.0
            if status == 429 and isinstance(body, dict) and body.get("code") == "rate_limited":
                retry_after = float(body.get("details", {}).get("retry_after_s", 1.0))
            elif status == 409 and isinstance(body, dict) and body.get("code") == "busy":
                retry_after = 1.0  # the gateway could not settle it yet (an order still being placed): again
            elif status not in (0, 500, 502, 503, 504):
                return status, body
            if time.monotonic() > deadline:
                raise JourneyFailed(f"{method} {path}: still {status} after {RETRY_FOR_S:g} s")
            self.journey.retries += 1
            await asyncio.sleep(retry_after)

    async def sandbox_call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                status, answer = await self._send(method, f"{self.sandbox}/sandbox/{path}", json=body)
                if status in (200, 201):
                    return dict(answer)
                raise JourneyFailed(f"sandbox {path}: {status} {answer}")
            except Transient:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)

    async def status(self, since: str = "") -> dict[str, Any]:
        """The application; with `since` (its last `updated_at`), a long poll until it changes."""
        query = f"?wait={LONG_POLL_S:g}&since={quote(since)}" if since and self.long_poll else ""
        _, body = await self.call("GET", f"/api/v1/application{query}")
        return dict(body)

    async def wait_until(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        since = ""
        while True:
            asked = time.monotonic()
            status = await self.status(since)
            if check(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g} s for {what}; state {status.get('state')}")
            unchanged = status.get("updated_at") == since
            since = str(status.get("updated_at") or "")
            if not self.long_poll or (unchanged and time.monotonic() - asked < 0.5 * LONG_POLL_S):
                # Polling (or a gateway without the long poll, which answers at once): wait a poll interval.
                await asyncio.sleep(self.poll_s)

    async def run(self, step_timeout: float, notified: Callable[[str], Awaitable[float]]) -> Journey:
        j, person = self.journey, self.kit.person
        j.started = time.time()
        try:
            await self._journey(j, person, step_timeout, notified)
            j.outcome = "done"
        except JourneyFailed as exc:
            j.outcome, j.error = "failed", str(exc)
        except TimeoutError as exc:
            j.outcome, j.error = "timeout", str(exc) or type(exc).__name__
        except Transient as exc:
            j.outcome, j.error = "failed", repr(exc)
        return j

    async def _journey(
        self, j: Journey, person: Person, step_timeout: float, notified: Callable[[str], Awaitable[float]]
    ) -> None:
        # 1-2 login: a login code is good once, so a failed attempt takes a new one.
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            code = (await self.sandbox_call("POST", "login-codes", {"openid": person.openid}))["code"]
            try:
                status, body = await self._send("POST", f"{self.gateway}/api/v1/login", json={"code": code})
            except Transient:
                status, body = 0, None
            if status == 200:
                self.token = body["token"]
                break
            if status not in (0, 429, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise JourneyFailed(f"login: {status} {body}")
            j.retries += 1
            await asyncio.sleep(1.0)
        j.mark("login")

        # 2 the phone number (WeChat's getPhoneNumber): personal data the log scan looks for afterwards.
        # A phone code is good once, so each attempt takes a new one.
        for attempt in range(3):
            phone_code = (await self.sandbox_call("POST", "phone-codes", {"phone": person.phone}))["code"]
            status, body = await self.call("POST", "/api/v1/me/phone", json={"code": phone_code})
            if status == 200:
                break
            if attempt == 2:
                raise JourneyFailed(f"phone: {status} {body}")
            j.retries += 1

        # 4-5 the collection code
        def code_form() -> aiohttp.FormData:
            form = aiohttp.FormData()
            claim = {"name": person.name, "student_number": person.number, "id_last4": person.id_last4}
            for key, value in {**claim, "agreed": "true"}.items():
                form.add_field(key, value)
            form.add_field("image", self.kit.code, filename="code.png", content_type="image/png")
            return form

        status, scan = await self.call(
            "POST", "/api/v1/codes", form=code_form, headers={"Idempotency-Key": f"code-{person.index}"}
        )
        if status != 202:
            raise JourneyFailed(f"code upload: {status} {scan}")
        j.inputs.append("code")
        j.mark("code_uploaded")
        scan_deadline = time.monotonic() + step_timeout
        while True:
            _, result = await self.call("GET", f"/api/v1/codes/{scan['scan_id']}?wait=20")
            if result.get("status") == "decoded":
                break
            if (
                result.get("status") not in (None, "pending", "processing")
                or time.monotonic() > scan_deadline
            ):
                raise JourneyFailed(f"code: {result.get('status')} {result.get('reason')}")
        j.mark("code_decoded")

        # 5 confirm (a retry after a lost answer finds it already confirmed)
        status, body = await self.call("POST", "/api/v1/application/confirm", json={})
        if status != 200 and (await self.status())["state"] != "confirmed":
            raise JourneyFailed(f"confirm: {status} {body}")
        j.inputs.append("confirm")
        j.mark("confirmed")

        # 6 order and pay
        status, order = await self.call(
            "POST", "/api/v1/orders", headers={"Idempotency-Key": f"order-{person.index}"}
        )
        if status != 201:
            raise JourneyFailed(f"order: {status} {order}")
        j.out_trade_no = order["out_trade_no"]
        j.mark("ordered")
        await self.sandbox_call("POST", f"pay/{order['out_trade_no']}", {})
        j.inputs.append("pay")
        j.mark("paid_in_wechat")
        paid = await self.wait_until(lambda s: s["state"] == "paid", "the payment", step_timeout)
        j.application_id = paid["application_id"]
        j.mark("paid")

        # 7-8 the photo; a refused one is retaken, as a student would (the quota allows 3 a day)
        for attempt in range(RETAKES + 1):
            picture = self.kit.photo if attempt == 0 else student_photo(person.index + 1 + 100_000 * attempt)

            def photo_form(data: bytes = picture) -> aiohttp.FormData:
                form = aiohttp.FormData()
                form.add_field("source", "camera")
                form.add_field("image", data, filename="photo.jpg", content_type="image/jpeg")
                return form

            j.mark("uploading")
            key = f"photo-{person.index}" + (f"-retake{attempt}" if attempt else "")
            status, photo = await self.call(
                "POST", "/api/v1/photos", form=photo_form, headers={"Idempotency-Key": key}
            )
            if status != 202:
                raise JourneyFailed(f"photo: {status} {photo}")
            j.photo_id = photo["photo_id"]
            j.inputs.append("photo")
            j.mark("uploaded")

            def photo_done(s: dict[str, Any]) -> bool:
                mine = next((p for p in s["photos"] if p["photo_id"] == j.photo_id), None)
                return mine is not None and mine["status"] != "processing"

            status_now = await self.wait_until(photo_done, "the standardisation", step_timeout)
            mine = next(p for p in status_now["photos"] if p["photo_id"] == j.photo_id)
            if mine["status"] == "standardized":
                break
            j.retakes.append(",".join(mine["reasons"]))
            if attempt == RETAKES:
                raise JourneyFailed(f"photo refused {RETAKES + 1} times: {j.retakes}")
            j.at.pop("uploading"), j.at.pop("uploaded")  # the stage is timed on the photo submitted
        j.mark("standardized")

        # 9-11 submit, compare
        body = {"photo_id": j.photo_id, "admission_photo_confirmed": True}
        j.mark("submitting")
        status, submitted = await self.call(
            "POST", "/api/v1/submissions", json=body, headers={"Idempotency-Key": f"submit-{person.index}"}
        )
        if status != 202:
            raise JourneyFailed(f"submit: {status} {submitted}")
        j.inputs.append("submit")
        j.mark("submitted")
        matched = await self.wait_until(
            lambda s: s["state"] not in ("submitted",), "the face comparison", step_timeout
        )
        if matched["state"] not in ("in_review", "approved"):  # approved: the reviewer was quicker than us
            raise JourneyFailed(f"comparison: {matched['state']} {matched.get('match')}")
        j.mark("matched")

        # 12-14 the operator decides (Operator below); the student hears of it through WeChat
        await self.wait_until(lambda s: s["state"] == "approved", "the review", step_timeout * 2)
        j.mark("approved_seen")
        j.at["notified"] = await asyncio.wait_for(notified(person.openid), step_timeout)


class Operator:
    """A reviewer working the console's review queue: next case, approve, again."""

    def __init__(self, gateway: str, email: str, password: str, http: aiohttp.ClientSession) -> None:
        self.gateway, self.email, self.password, self.http = gateway, email, password, http
        self.cookies: dict[str, str] = {}
        self.decided: dict[str, float] = {}  # application id -> when the decision was accepted
        self.errors = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method != "GET" and "console_csrf" in self.cookies:
            headers["X-CSRF-Token"] = self.cookies["console_csrf"]
        async with self.http.request(
            method,
            f"{self.gateway}/console/api/v1{path}",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
            **kwargs,
        ) as resp:
            for header in resp.headers.getall("Set-Cookie", []):
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value:
                        self.cookies[name] = morsel.value
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body

    async def login(self) -> None:
        status, body = await self.request(
            "POST", "/login", json={"email": self.email, "password": self.password}
        )
        if status != 200:
            raise RuntimeError(f"operator login: {status} {body}")

    async def work(self, stop: asyncio.Event, idle_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                status, body = await self.request("POST", "/reviews/next", json={})
                if status == 401:
                    await self.login()
                    continue
                case = body.get("case") if status == 200 and isinstance(body, dict) else None
                if case is None:
                    if status != 200:
                        self.errors += 1
                    await asyncio.sleep(idle_s)
                    continue
                app_id = case["application_id"]
                status, _ = await self.request(
                    "POST", f"/reviews/{app_id}/decision", json={"decision": "approved", "note": "load run"}
                )
                if status == 200 or status == 409:
                    self.decided.setdefault(app_id, time.time())
                else:
                    self.errors += 1
                    await asyncio.sleep(idle_s)
            except Transient:
                self.errors += 1
                await asyncio.sleep(1.0)
