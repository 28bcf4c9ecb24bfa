"""Console dashboard on the real broker (its management API) and database: queue figures that follow what
is published and consumed, the outbox backlog, the funnel and notify failures scoped to the operator's
schools, dead letters, and a management API that cannot be reached or answers nonsense.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiohttp import web

from services.gateway.config import GatewaySettings
from services.gateway.console.dashboard import (
    ManagementTarget,
    ManagementUnavailable,
    fetch_queues,
    management_target,
    vhost_of,
)
from services.gateway.console.operators import Role
from services.notify.config import DEMO_TEMPLATES
from shared.events import Envelope, ReviewDecided, make_event, new_id, utcnow
from tests.conftest import free_port
from tests.support.console import OperatorClient, in_review_case, operator
from tests.support.notify import application, notify_worker
from tests.support.system import running_system

pytestmark = pytest.mark.slow
DASHBOARD = "/console/api/v1/dashboard"
SCHOOL_A, SCHOOL_B = "10487", "10001"
# Stats reach the management API every 5 s (collect_statistics_interval): wait a few rounds.
STATS_TIMEOUT_S = 30.0


async def until(
    client: OperatorClient, check: Callable[[dict[str, Any]], bool], timeout: float = STATS_TIMEOUT_S
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await client.request("GET", DASHBOARD)
        assert status == 200, body
        if check(body):
            return dict(body)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"dashboard never matched: {json.dumps(body)[:2000]}")
        await asyncio.sleep(0.5)


def queue(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((q for q in body["queues"]["items"] if q["name"] == name), None)


def figures(body: dict[str, Any], name: str) -> tuple[int, int, int] | None:
    q = queue(body, name)
    return None if q is None else (q["messages_ready"], q["messages_unacked"], q["consumers"])


def funnel(body: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(row["school_code"], row["state"]): row["count"] for row in body["funnel"]}


async def test_queue_figures_follow_publishing_and_consuming(env):
    async with running_system(env, with_codec=False, console_dashboard_cache_s=0.2) as system:
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        body = await until(
            admin, lambda b: b["queues"]["available"] and (queue(b, "gateway") or {}).get("consumers", 0) >= 1
        )
        assert body["queues"]["error"] is None
        # The gateway consumes its own queue; every queue of the vhost is listed, sorted by name.
        names = [q["name"] for q in body["queues"]["items"]]
        assert names == sorted(names) and "notify.dead" in names
        for item in body["queues"]["items"]:
            assert set(item) == {
                "name",
                "messages_ready",
                "messages_unacked",
                "consumers",
                "publish_rate",
                "deliver_rate",
                "ack_rate",
            }
            assert item["publish_rate"] >= 0 and item["deliver_rate"] >= 0 and item["ack_rate"] >= 0

        connection = await aio_pika.connect(env["AMQP_URL"])
        try:
            channel = await connection.channel()
            probe = await channel.declare_queue("dashboard-probe")
            for n in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"%d" % n), routing_key=probe.name)
            await until(admin, lambda b: figures(b, "dashboard-probe") == (3, 0, 0))

            # A consumer takes all three and holds them unacknowledged.
            held: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                held.append(message)

            tag = await probe.consume(hold, no_ack=False)
            body = await until(admin, lambda b: figures(b, "dashboard-probe") == (0, 3, 1))
            assert len(held) == 3

            for message in held:
                await message.ack()
            await probe.cancel(tag)
            body = await until(admin, lambda b: figures(b, "dashboard-probe") == (0, 0, 0))
            # Three published, delivered and acknowledged: the rates saw them at some point, or are 0
            # once the sample window has passed; never negative, never missing.
            probe_row = queue(body, "dashboard-probe")
            assert probe_row is not None and probe_row["ack_rate"] >= 0

            # Two messages parked for notify: the dead-letter count follows.
            for n in range(2):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"{}", message_id=f"dead-{n}"), routing_key="notify.dead"
                )
            body = await until(admin, lambda b: b["dead_letters"]["count"] == 2)
            assert figures(body, "notify.dead") == (2, 0, 0)
        finally:
            await connection.close()


async def test_funnel_and_notify_failures_are_scoped_to_the_operators_schools(env):
    templates = {**DEMO_TEMPLATES, SCHOOL_B: DEMO_TEMPLATES[SCHOOL_A]}
    async with (
        running_system(env, with_codec=False, console_dashboard_cache_s=0) as system,
        notify_worker(env, system.sandbox, notify_templates=templates) as worker,
    ):
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        reviewer_a = await operator(system, "reviewer-a@example.com", Role.REVIEWER, [SCHOOL_A])
        support_b = await operator(system, "support-b@example.com", Role.SUPPORT, [SCHOOL_B])

        _, before = await reviewer_a.request("GET", DASHBOARD)
        case_a = await in_review_case(system, SCHOOL_A)
        await in_review_case(system, SCHOOL_B, number="2110216099")
        await in_review_case(system, SCHOOL_B, number="2110216098")

        status, body = await reviewer_a.request("GET", DASHBOARD)
        assert status == 200
        counts = funnel(body)
        assert {school for school, _ in counts} == {SCHOOL_A}
        assert counts[(SCHOOL_A, "in_review")] == funnel(before).get((SCHOOL_A, "in_review"), 0) + 1
        status, body = await support_b.request("GET", DASHBOARD)
        assert {school for school, _ in funnel(body)} == {SCHOOL_B}
        assert funnel(body)[(SCHOOL_B, "in_review")] == 2
        status, body = await admin.request("GET", DASHBOARD)
        assert funnel(body)[(SCHOOL_B, "in_review")] == 2 and funnel(body)[(SCHOOL_A, "in_review")] >= 1

        # The reviewer approves A's case: the funnel moves from in_review to approved at once.
        in_review = funnel((await reviewer_a.request("GET", DASHBOARD))[1])[(SCHOOL_A, "in_review")]
        status, decided = await reviewer_a.request(
            "POST", f"/console/api/v1/reviews/{case_a}/decision", json={"decision": "approved"}
        )
        assert status == 200, decided
        counts = funnel((await reviewer_a.request("GET", DASHBOARD))[1])
        assert counts.get((SCHOOL_A, "in_review"), 0) == in_review - 1
        assert counts[(SCHOOL_A, "approved")] >= 1
        # The approval's notification goes out first, so it cannot take one of the faults set below.
        notifications = system.gateway.database.db["notifications"]
        for _ in range(400):
            if await notifications.find_one({"application_id": case_a, "state": "sent"}):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the approval was never notified")

        # Notifications that WeChat refused, written by the notify worker itself: 43101 for a student of
        # A, 47003 for one of B. Each operator sees the error codes of their own schools only.
        app_a, app_b = application(school_code=SCHOOL_A), application(school_code=SCHOOL_B)
        await system.gateway.database.db["applications"].insert_many([app_a, app_b])
        for app, errcode, state in ((app_a, 43101, "not_deliverable"), (app_b, 47003, "rejected")):
            status, _ = await system.sandbox_call(
                "POST", "faults", {"subscribe_errcode": errcode, "count": 1}
            )
            assert status == 200
            event = review_event(app)
            await worker.runtime.bus.publish(event)
            await recorded(system, event.id, state)

        _, body = await reviewer_a.request("GET", DASHBOARD)
        assert [(f["code"], f["count"]) for f in body["notify_failures"]] == [("43101", 1)]
        assert body["notify_failures"][0]["last_at"] is not None
        _, body = await support_b.request("GET", DASHBOARD)
        assert [(f["code"], f["count"]) for f in body["notify_failures"]] == [("47003", 1)]
        _, body = await admin.request("GET", DASHBOARD)
        assert sorted((f["code"], f["count"]) for f in body["notify_failures"]) == [
            ("43101", 1),
            ("47003", 1),
        ]

        # Another 43101 in A: grouped under its code, newest time kept. A sent message is no failure.
        await system.sandbox_call("POST", "faults", {"subscribe_errcode": 43101, "count": 1})
        await worker.runtime.bus.publish(event_2 := review_event(app_a))
        second = await recorded(system, event_2.id, "not_deliverable")
        await worker.runtime.bus.publish(event_3 := review_event(app_a))
        await recorded(system, event_3.id, "sent")
        _, body = await reviewer_a.request("GET", DASHBOARD)
        [failure] = body["notify_failures"]
        assert failure["code"] == "43101" and failure["count"] == 2
        # nx-27017 may hand the time back as text (docs/architecture.md): compare instants.
        stored_at = second["updated_at"]
        stored_at = stored_at if isinstance(stored_at, datetime) else datetime.fromisoformat(stored_at)
        stored_at = stored_at if stored_at.tzinfo else stored_at.replace(tzinfo=UTC)
        assert abs(datetime.fromisoformat(failure["last_at"]) - stored_at) < timedelta(milliseconds=2)

        # A failure older than the window (7 days by default) is not on the dashboard.
        await system.gateway.database.db["notifications"].update_one(
            {"_id": event_2.id}, {"$set": {"updated_at": utcnow() - timedelta(days=8)}}
        )
        _, body = await reviewer_a.request("GET", DASHBOARD)
        assert [(f["code"], f["count"]) for f in body["notify_failures"]] == [("43101", 1)]


def review_event(app: dict[str, Any]) -> Envelope:
    data = ReviewDecided(
        review_id=new_id(),
        photo_id="p-1",
        student_id=app["student_id"],
        decision="approved",
        operator_id="op-1",
    )
    return make_event(data, application_id=app["_id"])


async def recorded(system: Any, event_id: str, state: str) -> dict[str, Any]:
    notifications = system.gateway.database.db["notifications"]
    for _ in range(400):
        doc = await notifications.find_one({"_id": event_id})
        if doc is not None and doc["state"] == state:
            return dict(doc)
        await asyncio.sleep(0.05)
    raise AssertionError(f"notification {event_id} never reached {state}")


async def test_outbox_backlog_and_its_age(env):
    async with running_system(env, with_codec=False, console_dashboard_cache_s=0) as system:
        reviewer = await operator(system, "reviewer@example.com", Role.REVIEWER, [SCHOOL_A])
        _, body = await reviewer.request("GET", DASHBOARD)
        assert body["outbox"] == {"pending_events": 0, "aggregates_pending": 0, "oldest_age_s": None}

        # An event the relay cannot publish (its body is not an envelope) stays pending: the backlog
        # shows it, with its age counted from when it occurred.
        occurred = utcnow() - timedelta(minutes=10)
        stuck = {"body": "{not an envelope", "type": "x.v1", "occurred_at": occurred.isoformat()}
        await system.gateway.database.db["applications"].insert_one(
            {
                "_id": new_id(),
                "state": "bound",
                "school_code": SCHOOL_A,
                "outbox": {"e1": stuck, "e2": {**stuck, "occurred_at": utcnow().isoformat()}},
                "outbox_pending": 2,
            }
        )
        _, body = await reviewer.request("GET", DASHBOARD)
        outbox = body["outbox"]
        assert outbox["pending_events"] == 2 and outbox["aggregates_pending"] == 1
        assert 600 <= outbox["oldest_age_s"] < 700


async def test_management_api_unreachable_still_answers(env):
    async with running_system(
        env,
        with_codec=False,
        console_dashboard_cache_s=0,
        rabbitmq_management_url=f"http://127.0.0.1:{free_port()}",
    ) as system:
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        await park(env, "notify.dead", 3)
        await in_review_case(system, SCHOOL_A)
        status, body = await admin.request("GET", DASHBOARD)
        assert status == 200
        queues = body["queues"]
        assert queues["available"] is False and queues["items"] == []
        assert "unreachable" in queues["error"] and "guest" not in queues["error"]
        # The rest answers: dead letters counted over AMQP instead, the funnel, the outbox.
        assert body["dead_letters"]["count"] == 3
        by_queue = {q["queue"]: q["messages"] for q in body["dead_letters"]["by_queue"]}
        assert by_queue["notify.dead"] == 3 and sum(by_queue.values()) == 3
        assert body["history"] is None  # no charts of the queues without the management API
        assert funnel(body)[(SCHOOL_A, "in_review")] == 1
        assert body["outbox"]["pending_events"] == 0
        assert set(body) == {
            "generated_at",
            "queues",
            "outbox",
            "funnel",
            "notify_failures",
            "dead_letters",
            "history",
            "throughput",
            "outbox_history",
        }

        # Not signed in, a forged or a revoked session: 401, no figures.
        anonymous = OperatorClient(system.base_url, admin.http)
        status, body = await anonymous.request("GET", DASHBOARD)
        assert status == 401 and body["code"] == "console_unauthenticated" and "queues" not in body
        forged = OperatorClient(system.base_url, admin.http, cookies={"console_session": "x" * 43})
        assert (await forged.request("GET", DASHBOARD))[0] == 401
        oversized = OperatorClient(system.base_url, admin.http, cookies={"console_session": "x" * 5000})
        assert (await oversized.request("GET", DASHBOARD))[0] == 401
        assert (await admin.request("POST", "/console/api/v1/logout"))[0] == 204
        assert (await admin.request("GET", DASHBOARD))[0] == 401
        # Read-only: another method is refused.
        status, _ = await admin.request("POST", DASHBOARD, json={})
        assert status == 405


async def park(env: dict[str, str], queue_name: str, count: int) -> None:
    connection = await aio_pika.connect(env["AMQP_URL"])
    try:
        channel = await connection.channel()
        for n in range(count):
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", message_id=f"parked-{n}"), routing_key=queue_name
            )
    finally:
        await connection.close()


# --- the management API's answers, hostile ones included ----------------------------------------


@asynccontextmanager
async def management_stub(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[ManagementTarget]:
    """A local HTTP server standing in for a broken management API (the real one is tested above)."""
    app = web.Application()
    app.router.add_get("/api/queues/{vhost}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        settings = GatewaySettings(
            amqp_url="amqp://app:s3cret@127.0.0.1:5672/prod%2Fvhost",
            rabbitmq_management_url=f"http://127.0.0.1:{port}",
        )
        yield management_target(settings)
    finally:
        await runner.cleanup()


async def test_hostile_management_answers_are_refused_with_a_reason():
    seen: list[tuple[str, str | None]] = []

    def answer(status: int, body: bytes) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            seen.append((request.match_info["vhost"], request.headers.get("Authorization")))
            return web.Response(status=status, body=body, content_type="application/json")

        return handler

    cases = [
        (answer(401, b'{"error":"not_authorised"}'), "answered HTTP 401"),
        (answer(200, b"<html>not json</html>"), "not JSON"),
        (answer(200, b'{"queues": []}'), "not a queue list"),
        (answer(200, b"[" + b'"x",' * 2_000_000 + b'"x"]'), "too large"),
    ]
    async with aiohttp.ClientSession() as http:
        for handler, reason in cases:
            async with management_stub(handler) as target:
                with pytest.raises(ManagementUnavailable, match=reason) as raised:
                    await fetch_queues(http, target, 2.0)
                assert "s3cret" not in str(raised.value) and "app:" not in str(raised.value)

        async def slow(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(2)
            return web.Response(text="[]")

        async with management_stub(slow) as target:
            with pytest.raises(ManagementUnavailable, match=r"no answer in 0\.3 s"):
                await fetch_queues(http, target, 0.3)

        # Entries that are not queues are dropped; wrong types read as 0, never crash or go negative.
        junk = [
            "x",
            None,
            {"messages_ready": 5},
            {"name": 7},
            {
                "name": "ok",
                "messages_ready": True,
                "messages_unacknowledged": "9",
                "consumers": 2,
                "messages": 4,
                "message_stats": {"publish_details": {"rate": 1.25}, "ack_details": "fast"},
            },
        ]
        async with management_stub(answer(200, json.dumps(junk).encode())) as target:
            items, depth = await fetch_queues(http, target, 2.0)
        [item] = items
        assert item.model_dump() == {
            "name": "ok",
            "messages_ready": 0,
            "messages_unacked": 0,
            "consumers": 2,
            "publish_rate": 1.25,
            "deliver_rate": 0.0,
            "ack_rate": 0.0,
        }
        assert depth == {"ok": 4}
    # The vhost of the AMQP URL, percent-encoded once; the AMQP URL's credentials (none in the URL).
    assert {vhost for vhost, _ in seen} == {"prod/vhost"}
    assert {auth for _, auth in seen} == {aiohttp.encode_basic_auth("app", "s3cret")}


def test_management_target_from_the_settings():
    default = management_target(GatewaySettings(amqp_url="amqp://guest:guest@rabbit.local:5672/"))
    assert str(default.url) == "http://rabbit.local:15672/api/queues/%2F"
    assert (default.login, default.password) == ("guest", "guest")
    own = management_target(
        GatewaySettings(
            amqp_url="amqp://app:p%40ss@rabbit:5672/test-1",
            rabbitmq_management_url="https://mon:pw@mgmt.example.com:8443/rabbit/",
        )
    )
    assert str(own.url) == "https://mgmt.example.com:8443/rabbit/api/queues/test-1"
    assert (own.login, own.password) == ("mon", "pw") and own.display == "mgmt.example.com:8443"
    no_credentials = management_target(
        GatewaySettings(amqp_url="amqp://app:p%40ss@rabbit:5672/", rabbitmq_management_url="http://m:15672")
    )
    assert (no_credentials.login, no_credentials.password) == ("app", "p@ss")
    assert (
        vhost_of("amqp://h/") == "/" and vhost_of("amqp://h") == "/" and vhost_of("amqp://h/a%2Fb") == "a/b"
    )
