"""The status long poll (issue 16.3): waiting students are woken by the gateway's own writes, not by
reading the database every interval; the database is read again only every recheck interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import pytest

from services.gateway.context import WAITERS
from shared.dbstats import COMMANDS
from tests.integration.test_journey import photo_form, wait_photo
from tests.support.codes import code_text
from tests.support.photos import photo_jpeg, score, standardise
from tests.support.system import running_system

pytestmark = pytest.mark.slow

QUIET = {
    # Nothing else in the gateway reads applications while a test counts: the relay only when woken,
    # the funnel gauge and payment reconciliation not during the test.
    "outbox_poll_interval_s": 60.0,
    "gateway_funnel_interval_s": 600.0,
    "gateway_reconcile_interval_s": 600.0,
    "gateway_long_poll_recheck_s": 60.0,
}


def application_finds() -> float:
    return COMMANDS.labels("applications", "read", "find")._value.get()  # type: ignore[attr-defined]


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_waiting_student_is_woken_by_the_result_and_reads_nothing_meanwhile(env):
    async with running_system(env, **QUIET) as system:
        waiters = system.gateway.app[WAITERS]
        student = await system.paid_student("o-long-poll")
        app_id = (await student.status())["application_id"]
        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        assert status == 202
        await standardise(env, system, app_id, photo["photo_id"])
        await wait_photo(student, photo["photo_id"], "standardized")
        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}
        assert (await student.request("POST", "/api/v1/submissions", json=body))[0] == 202
        submitted = await student.status()
        assert submitted["state"] == "submitted"
        since = quote(submitted["updated_at"])

        # Nothing changes: a 3 s long poll reads the application twice (at its start and its end),
        # where a client polling every second would have made four requests and four reads.
        before = application_finds()
        status, same = await student.request("GET", f"/api/v1/application?wait=3&since={since}")
        assert (
            status == 200 and same["updated_at"] == submitted["updated_at"] and same["state"] == "submitted"
        )
        assert application_finds() - before == 2

        # The comparison's result arrives while the student waits (recheck 60 s, wait 25 s): the request
        # answers with the new state well before its deadline, because the gateway's handler woke it.
        started = time.monotonic()
        waiting = asyncio.create_task(student.request("GET", f"/api/v1/application?wait=25&since={since}"))
        await until(lambda: waiters.waiting == 1)
        before = application_finds()
        await score(env, app_id, photo["photo_id"], "10487:2110216052", 83.5, band="borderline")
        status, changed = await waiting
        assert (
            status == 200
            and changed["state"] == "in_review"
            and changed["updated_at"] != submitted["updated_at"]
        )
        assert time.monotonic() - started < 25
        # The handler's own read and write, and the woken request's one read: no polling.
        assert application_finds() - before <= 3
        # The score's band reaches the application the console shows reviewers (review.js).
        stored = await system.gateway.database.db["applications"].find_one({"_id": app_id})
        assert stored["match"]["band"] == "borderline" and stored["match"]["score"] == 83.5
        assert "band" not in changed["match"]  # the student's view keeps score, passed, photo id

        # Without `since`, or with one that is not the current value, the answer is immediate.
        hostile = [quote("0001-01-01T00:00:00+14:00"), quote("9999-12-31T23:59:59-14:00")]
        for query in (
            "",
            "?wait=25",
            f"?wait=25&since={quote('2000-01-01T00:00:00Z')}",
            "?wait=25&since=",
            *(f"?wait=25&since={h}" for h in hostile),
        ):
            status, now = await student.request("GET", f"/api/v1/application{query}")
            assert status == 200 and now["state"] == "in_review", query
        # Hostile waits.
        for wait in ("abc", "nan", "inf", "1e999", "--1", "-5", "26"):
            status, error = await student.request("GET", f"/api/v1/application?wait={wait}&since={since}")
            assert (status, error["code"]) == (400, "invalid_request"), wait
        status, fine = await student.request("GET", f"/api/v1/application?wait=0&since={since}")
        assert status == 200 and fine["state"] == "in_review"
        assert waiters.waiting == 0


async def test_the_code_scan_long_poll_is_woken_by_the_codec_result(env):
    async with running_system(env, **QUIET) as system:
        student = await system.student("o-scan-poll")
        status, scan = await student.submit_text(code_text())
        assert status in (200, 202), scan
        waiters = system.gateway.app[WAITERS]
        status, result = await student.request("GET", f"/api/v1/codes/{scan['scan_id']}?wait=20")
        assert status == 200 and result["status"] == "decoded"
        assert waiters.waiting == 0
        for wait in ("x", "nan"):
            status, error = await student.request("GET", f"/api/v1/codes/{scan['scan_id']}?wait={wait}")
            assert (status, error["code"]) == (400, "invalid_request")
        status, _ = await student.request("GET", "/api/v1/codes/unknown?wait=1")
        assert status == 404


async def test_waiters_wake_on_change_and_miss_nothing_written_during_a_read():
    from services.gateway.waiters import Waiters, same_instant

    waiters = Waiters(recheck_s=5)
    seen = waiters.seen("o1")
    waiters.changed({"owner_openid": "o1"})  # written while the request was reading
    assert await waiters.wait("o1", seen, 30) is True  # at once, no sleep
    assert await waiters.wait("o1", waiters.seen("o1"), 0.05) is False
    task = asyncio.create_task(waiters.wait("o2", waiters.seen("o2"), 30))
    await until(lambda: waiters.waiting == 1)
    waiters.changed({"owner_openid": "o-old"}, {"owner_openid": "o2"})  # ownership moved: both woken
    assert await task is True and waiters.waiting == 0
    waiters.changed(None, {}, {"owner_openid": None})  # nothing to wake, nothing kept
    assert waiters.seen("o-old") == 1 and waiters.waiting == 0
    assert same_instant("2026-12-02T08:56:32.050000Z", "2026-12-02T08:56:32.050000")
    assert same_instant("2026-12-02T16:56:32.05+08:00", "2026-12-02T08:56:32.050000")
    assert not same_instant("2026-12-02T08:56:32.051Z", "2026-12-02T08:56:32.050000")
    assert not same_instant("", "2026-12-02T08:56:32.050000")
    assert not same_instant("yesterday", "2026-12-02T08:56:32.050000")
