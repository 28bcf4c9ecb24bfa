"""The status long poll (issue 16.3): waiting students are woken by the gateway's own writes, not by
reading the database every interval; the database is read again only every recheck interval."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
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
    # Nothing else in the gateway reads applications while a test counts: the relay publishes the
    # gateway's own events from memory and sweeps only at start; the funnel gauge and payment
    # reconciliation not during the test.
    "outbox_sweep_interval_s": 60.0,
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

        # Nothing changes: a 3 s long poll reads the application once, before it starts waiting (a copy in
        # memory could have been overtaken by the student's own action through another replica), and
        # answers at its end from what it read (younger than the recheck interval, 60 s here); a client
        # polling every second would have made four requests and four reads.
        before = application_finds()
        status, same = await student.request("GET", f"/api/v1/application?wait=3&since={since}")
        assert (
            status == 200 and same["updated_at"] == submitted["updated_at"] and same["state"] == "submitted"
        )
        assert application_finds() - before == 1

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
        # The handler's own read before its write; the woken request takes the document the handler
        # wrote (waiters.py): no polling, and no read to answer.
        assert application_finds() - before == 1
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


async def test_a_change_the_gateway_did_not_write_is_seen_within_the_recheck_interval(env):
    """Another replica's write (here: straight into the database) reaches a waiting student at the next
    recheck, even though the gateway holds a copy of the application in memory."""
    async with running_system(env, **{**QUIET, "gateway_long_poll_recheck_s": 1.0}) as system:
        student = await system.paid_student("o-long-poll-replica")
        current = await student.status()
        since = quote(current["updated_at"])
        # With nothing changing, the copy is trusted for one recheck interval at a time: a 3 s poll reads
        # once per interval at most (never per request, never more often).
        before = application_finds()
        status, same = await student.request("GET", f"/api/v1/application?wait=3&since={since}")
        assert status == 200 and same["updated_at"] == current["updated_at"]
        assert 1 <= application_finds() - before <= 4

        waiters = system.gateway.app[WAITERS]
        waiting = asyncio.create_task(student.request("GET", f"/api/v1/application?wait=20&since={since}"))
        await until(lambda: waiters.waiting == 1)
        collection = system.gateway.database.db["applications"]
        later = datetime.fromisoformat(current["updated_at"]) + timedelta(seconds=1)
        written = await collection.update_one(
            {"_id": current["application_id"]},
            {"$set": {"updated_at": later, "graduation_note": "another replica"}, "$inc": {"version": 1}},
        )
        assert written.modified_count == 1
        status, seen = await waiting
        assert status == 200 and datetime.fromisoformat(seen["updated_at"]) == later
        assert waiters.waiting == 0

        # A client that already saw a newer write (through another replica) is never answered with the
        # older copy this process holds: that copy is older than its `since`, so the database is read.
        latest = later + timedelta(seconds=1)
        await collection.update_one(
            {"_id": current["application_id"]}, {"$set": {"updated_at": latest}, "$inc": {"version": 1}}
        )
        before = application_finds()
        status, again = await student.request(
            "GET", f"/api/v1/application?wait=1&since={quote(latest.isoformat())}"
        )
        assert status == 200 and datetime.fromisoformat(again["updated_at"]) == latest
        assert application_finds() - before >= 1


async def test_the_remembered_copy_is_bounded_versioned_and_follows_ownership(monkeypatch):
    from datetime import UTC

    from services.gateway import waiters as module
    from services.gateway.waiters import Waiters

    now = datetime(2026, 12, 2, 8, 0, 0, 123456, tzinfo=UTC)
    waiters = Waiters(recheck_s=5)
    v2 = {"_id": "a1", "owner_openid": "o1", "version": 2, "updated_at": now, "state": "paid"}
    waiters.changed({**v2, "version": 1}, v2)
    copy = waiters.latest("o1")
    assert copy is not None and copy["state"] == "paid"
    # As the database hands it back: milliseconds, aware UTC; so the client's `since` matches it exactly.
    assert copy["updated_at"] == now.replace(microsecond=123000)
    assert waiters.latest("o1", copy["updated_at"].isoformat()) is not None
    assert waiters.latest("o1", (now + timedelta(seconds=1)).isoformat()) is None  # client saw newer
    assert waiters.latest("o1", "not a time") is not None  # unparseable since: the copy, then "changed"
    # An older version read back late never replaces a newer one.
    waiters.remember("o1", {**v2, "version": 1, "state": "confirmed"})
    assert waiters.latest("o1")["state"] == "paid"  # type: ignore[index]
    # Ownership moved: the old owner's copy goes; merged into another application: gone too.
    waiters.changed(v2, {**v2, "version": 3, "owner_openid": "o2"})
    assert waiters.latest("o1") is None and waiters.latest("o2") is not None
    waiters.changed(
        {**v2, "owner_openid": "o2"}, {**v2, "version": 4, "owner_openid": "o2", "merged_into": "b"}
    )
    assert waiters.latest("o2") is None
    # Known true only for recheck_s.
    waiters.remember("o3", {**v2, "owner_openid": "o3"})
    clock = module.time.monotonic
    monkeypatch.setattr(module.time, "monotonic", lambda: clock() + 5.1)
    assert waiters.latest("o3") is None
    monkeypatch.setattr(module.time, "monotonic", clock)
    # A read under way when the owner's application changed or was forgotten (unbound, merged, erased)
    # does not bring back what it read.
    token = waiters.seen("o4")
    waiters.forget("o4")
    waiters.remember("o4", {**v2, "owner_openid": "o4"}, token)
    assert waiters.latest("o4") is None
    token = waiters.seen("o4")
    waiters.changed({**v2, "owner_openid": "o4", "version": 7})
    waiters.remember("o4", {**v2, "owner_openid": "o4", "state": "read before"}, token)
    assert waiters.latest("o4")["version"] == 7  # type: ignore[index]
    waiters.remember("o5", {**v2, "owner_openid": "o5"}, waiters.seen("o5"))  # nothing moved: kept
    assert waiters.latest("o5") is not None
    # Bounded: the oldest go first.
    monkeypatch.setattr(module, "MAX_REMEMBERED", 3)
    for n in range(5):
        waiters.remember(f"p{n}", {**v2, "_id": f"b{n}", "owner_openid": f"p{n}"})
    assert [waiters.latest(f"p{n}") is not None for n in range(5)] == [False, False, True, True, True]


async def test_a_new_long_poll_sees_the_students_own_action_through_another_replica_at_once(env):
    """The gateway holds a fresh copy (recheck 60 s), then the student acts through another replica: a new
    long poll with the `since` the client had must answer with that change, not wait on the copy."""
    async with running_system(env, **QUIET) as system:
        student = await system.paid_student("o-long-poll-own-action")
        current = await student.status()  # read here: the copy is fresh
        later = datetime.fromisoformat(current["updated_at"]) + timedelta(seconds=1)
        collection = system.gateway.database.db["applications"]
        await collection.update_one(
            {"_id": current["application_id"]}, {"$set": {"updated_at": later}, "$inc": {"version": 1}}
        )
        status, seen = await student.request(
            "GET", f"/api/v1/application?wait=20&since={quote(current['updated_at'])}"
        )
        assert status == 200 and datetime.fromisoformat(seen["updated_at"]) == later
