"""The console's session and operator cache (issue 16): a busy operator costs no reads per request, and
this process's logout, disable and role change still take effect at once; expiry is exact; another
replica's change is seen within CONSOLE_AUTH_CACHE_S. On the real nx-27017."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from services.gateway.console.auth import CONSOLE, ConsoleSessions
from services.gateway.console.operators import Operators, Role
from services.gateway.console.review import CANDIDATES
from shared.dbstats import COMMANDS
from shared.events import utcnow
from tests.support.console import PASSWORD, OperatorClient, in_review_case, operator
from tests.support.system import running_system

ME = "/console/api/v1/me"


def finds(collection: str) -> float:
    return float(COMMANDS.labels(collection, "read", "find")._value.get())


def auth_reads() -> tuple[float, float]:
    return finds("console_sessions"), finds("operators")


async def test_requests_within_the_cache_cost_no_auth_reads_and_writes_here_take_effect_at_once(
    env: dict[str, str],
) -> None:
    # A long cache: whatever ends a session below does so through this process's writes, not its lapse.
    async with running_system(env, with_codec=False, console_auth_cache_s=30) as system:
        console = system.gateway.app[CONSOLE]
        await in_review_case(system)
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        before = auth_reads()
        assert (await admin.request("GET", ME))[0] == 200
        assert auth_reads() == (before[0] + 1, before[1] + 1)  # the first request reads both

        # Twenty more, reads and writes (CSRF still checked against the cached session): no auth reads.
        before = auth_reads()
        for _ in range(10):
            assert (await admin.request("GET", ME))[0] == 200
            assert (await admin.request("POST", "/console/api/v1/reviews/next"))[0] == 200
        assert (await admin.request("POST", "/console/api/v1/reviews/next", csrf="forged"))[0] == 403
        assert auth_reads() == before

        # Logout: the same cookie is refused at once (it was cached a moment ago).
        cookies = dict(admin.cookies)
        assert (await admin.request("POST", "/console/api/v1/logout"))[0] == 204
        replay = OperatorClient(system.base_url, admin.http, cookies=cookies)
        status, body = await replay.request("GET", ME)
        assert status == 401 and body["code"] == "console_unauthenticated"

        # Disabled through this process: refused at once, with its session still in the database.
        reviewer = await operator(system, "rev@example.com", Role.REVIEWER, ["10487"])
        assert (await reviewer.request("GET", ME))[0] == 200
        await console.operators.update(reviewer.operator_id, {"active": False})
        assert (await reviewer.request("GET", ME))[0] == 401
        assert (await reviewer.request("POST", "/console/api/v1/reviews/next"))[0] == 401

        # A role change through this process: the next request has the new role.
        second = await operator(system, "rev2@example.com", Role.REVIEWER, ["10487"])
        assert (await second.request("POST", "/console/api/v1/reviews/next"))[0] == 200
        await console.operators.update(second.operator_id, {"role": str(Role.SUPPORT)})
        status, body = await second.request("POST", "/console/api/v1/reviews/next")
        assert status == 403 and body["code"] == "forbidden"
        assert (await second.request("GET", ME))[1]["role"] == "support"

        # A password set through this process (the invitation link) is not hidden by a cached record.
        await console.operators.update(second.operator_id, {"password_hash": "scrypt$1$1$1$00$00"})
        assert (await OperatorClient(system.base_url, admin.http).login("rev2@example.com"))[0] == 401


async def test_a_cached_session_expires_on_time(database: Any) -> None:
    sessions = ConsoleSessions(database, timedelta(seconds=1.5), cache_s=60)
    token, csrf = await sessions.create("op-1")
    before = finds("console_sessions")
    session = await sessions.resolve(token)
    assert session is not None and session.operator_id == "op-1" and session.csrf == csrf
    assert await sessions.resolve(token) == session
    assert finds("console_sessions") == before + 1
    await asyncio.sleep(1.6)
    assert await sessions.resolve(token) is None  # from the cache, which keeps the expiry
    assert finds("console_sessions") == before + 1
    assert await sessions.resolve("not a token") is None  # unknown tokens are not cached: read each time
    assert await sessions.resolve("not a token") is None
    assert finds("console_sessions") == before + 3


async def test_another_replicas_changes_are_seen_within_the_cache_ttl(database: Any) -> None:
    # Two replicas: two stores on one database, each with its own cache.
    here, there = Operators(database, cache_s=1.0), Operators(database, cache_s=1.0)
    created = await here.create("op@example.com", PASSWORD, Role.REVIEWER, ["10487"])
    assert await there.get(created.operator_id) == created
    await here.update(created.operator_id, {"active": False})
    assert await here.get(created.operator_id) is None  # at once here
    started = time.monotonic()
    while await there.get(created.operator_id) is not None:  # within cache_s there
        # cache_s (1 s) plus room for a slow, shared machine: what matters is that it ends.
        assert time.monotonic() - started < 6
        await asyncio.sleep(0.05)

    sessions_here = ConsoleSessions(database, timedelta(minutes=5), cache_s=1.0)
    sessions_there = ConsoleSessions(database, timedelta(minutes=5), cache_s=1.0)
    token, _ = await sessions_here.create("op-2")
    assert await sessions_there.resolve(token) is not None
    await sessions_here.revoke(token)
    assert await sessions_here.resolve(token) is None
    started = time.monotonic()
    while await sessions_there.resolve(token) is not None:
        # cache_s (1 s) plus room for a slow, shared machine: what matters is that it ends.
        assert time.monotonic() - started < 6
        await asyncio.sleep(0.05)


# Nothing else in the gateway reads applications while the next test counts (as in test_long_poll.py).
QUIET: dict[str, Any] = {
    "outbox_sweep_interval_s": 60.0,
    "gateway_funnel_interval_s": 600.0,
    "gateway_reconcile_interval_s": 600.0,
    "gateway_long_poll_recheck_s": 60.0,
}


async def test_next_case_reads_one_collection_when_none_waits_and_still_returns_a_held_case_first(
    env: dict[str, str],
) -> None:
    async with running_system(env, with_codec=False, **QUIET) as system:
        reviewer = await operator(system, "rev@example.com", Role.REVIEWER, ["10487"])
        other = await operator(system, "other@example.com", Role.REVIEWER, ["10487"])
        assert (await reviewer.request("GET", ME))[0] == 200  # the auth cache is warm

        def reads() -> tuple[float, float]:
            return finds("applications"), finds("review_leases")

        # None waits: one read of the queue, none of the leases (was three reads).
        before = reads()
        assert (await reviewer.request("POST", "/console/api/v1/reviews/next"))[1] == {"case": None}
        assert reads() == (before[0] + 1, before[1])

        # A case handed out: the queue, the leases once, the application once the lease is held.
        first = await in_review_case(system)
        before = reads()
        status, body = await reviewer.request("POST", "/console/api/v1/reviews/next")
        assert status == 200 and body["case"]["application_id"] == first
        assert reads() == (before[0] + 2, before[1] + 1)
        assert (await other.request("POST", "/console/api/v1/reviews/next"))[1] == {"case": None}

        # A case I hold beyond the oldest CANDIDATES still comes back first, and leased ones are left out.
        numbers = [f"21102170{i:02d}" for i in range(CANDIDATES)]
        waiting = [await in_review_case(system, number=n) for n in numbers]
        newest = waiting[-1]
        db = system.gateway.database.db
        await db["applications"].update_one(
            {"_id": newest}, {"$set": {"updated_at": utcnow() + timedelta(hours=1)}}
        )
        await db["review_leases"].insert_one(
            {
                "_id": newest,
                "operator_id": other.operator_id,
                "school_code": "10487",
                "expires_at": utcnow() + timedelta(minutes=5),
            }
        )
        status, body = await other.request("POST", "/console/api/v1/reviews/next")
        assert body["case"]["application_id"] == newest
        status, body = await other.request("POST", "/console/api/v1/reviews/next", json={"skip": [newest]})
        assert body["case"]["application_id"] not in (first, newest)
        status, body = await reviewer.request("POST", "/console/api/v1/reviews/next", json={"skip": [first]})
        assert body["case"]["application_id"] not in (first, newest)
