"""The notify worker on the real broker and database, sending to the WeChat sandbox.

Events are published as their producers would; applications are written as the gateway writes them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import pytest

from sandbox.wechat import SandboxServer
from shared.bus import HANDLED
from shared.events import Envelope, MatchScored, OrderPaid, ReviewDecided, make_event
from shared.wechat.keys import client_env
from tests.conftest import free_port
from tests.support.notify import OPENID, application, eventually, notify_worker, strict_templates
from tests.support.processes import ServiceProcess
from tests.support.wechat import running_sandbox, shared_keyset

pytestmark = pytest.mark.slow
PAID_AT = datetime(2026, 11, 28, 1, 30, tzinfo=UTC)  # 09:30 in China


def order_paid(app: dict[str, Any]) -> Envelope:
    data = OrderPaid(
        order_id="o-1",
        student_id=app["student_id"],
        amount_fen=3000,
        transaction_id="4200000001202611280000000001",
        payer_openid="oPayer_0000000000000000000001",
        paid_at=PAID_AT,
    )
    return make_event(data, application_id=app["_id"])


def match_scored(app: dict[str, Any], *, passed: bool = False) -> Envelope:
    data = MatchScored(
        photo_id="p-1",
        student_id=app["student_id"],
        score=85.0 if passed else 61.37,
        passed=passed,
        engine="dlib",
        message="人脸比对未通过（61.4 分，需 80 分），请使用本人其他合规照片重新提交",
        failed_compliant_photos=1,
    )
    return make_event(data, application_id=app["_id"])


def review(app: dict[str, Any], decision: str = "approved", reason: str | None = None) -> Envelope:
    data = ReviewDecided(
        review_id="r-1",
        photo_id="p-1",
        student_id=app["student_id"],
        decision=decision,  # type: ignore[arg-type]
        reason=reason,
        operator_id="op-1",
    )
    return make_event(data, application_id=app["_id"], occurred_at=PAID_AT)


async def record(database: Any, event_id: str, *states: str) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        doc = await database.db["notifications"].find_one({"_id": event_id})
        return doc if doc is not None and doc["state"] in states else None

    return await eventually(settled)


async def test_each_event_type_produces_its_message(env, database) -> None:
    async with running_sandbox(shared_keyset()) as sandbox, notify_worker(env, sandbox) as worker:
        strict_templates(sandbox)
        app = application()
        await database.db["applications"].insert_one(app)
        long_reason = "照片背景有阴影且不均匀，眼镜反光遮挡眼睛，请摘下眼镜在浅蓝色背景前重新拍摄"
        events = [
            order_paid(app),
            match_scored(app, passed=True),  # no message: a passed comparison goes on to review
            match_scored(app),
            review(app, "approved"),
            review(app, "rejected", reason=long_reason),
        ]
        for event in events:
            await worker.runtime.bus.publish(event)
        for event in (events[0], *events[2:]):
            await record(database, event.id, "sent")
        # The notification record is the claim: the bus wrote none for notify (docs/notify.md).
        assert await database.db["processed_events"].count_documents({"consumer": "notify"}) == 0
        assert await database.db["notifications"].count_documents({}) == 4

        by_template: dict[str, list[dict[str, Any]]] = {}
        for message in sandbox.state.messages:
            assert message["touser"] == OPENID and message["page"] == "pages/status/index"
            by_template.setdefault(message["template_id"], []).append(message["data"])
        assert sandbox.state.rejected_messages == []
        assert by_template["demo_order_paid"] == [
            {
                "thing1": {"value": "示范大学"},
                "name2": {"value": "赵**"},
                "amount3": {"value": "¥30.00"},
                "time4": {"value": "2026年11月28日 09:30"},
                "character_string5": {"value": "GP20261128000001"},
            }
        ]
        [match] = by_template["demo_match_result"]
        assert match["phrase3"] == {"value": "比对未通过"}
        assert match["thing4"]["value"] == "人脸比对未通过（61.4 分，需 80…"
        assert len(match["thing4"]["value"]) == 20
        # Handled concurrently: the two reviews may arrive in either order.
        reviews = {data["phrase3"]["value"]: data for data in by_template["demo_review_result"]}
        approved, rejected = reviews["审核通过"], reviews["审核未通过"]
        assert approved["phrase3"] == {"value": "审核通过"}
        assert approved["thing4"] == {"value": "照片将上传学信网并打印邮寄"}
        assert approved["time5"] == {"value": "2026年11月28日 09:30"}
        assert rejected["phrase3"] == {"value": "审核未通过"}
        assert rejected["thing4"] == {"value": long_reason[:19] + "…"}

        stored = await database.db["notifications"].find_one({"_id": events[4].id})
        assert stored["kind"] == "review_rejected" and stored["template_id"] == "demo_review_result"
        assert (
            stored["attempts"] == 1 and stored["errcode"] == 0 and stored["student_id"] == app["student_id"]
        )
        assert stored["data"] == rejected


async def test_redelivery_sends_one_message(env, database) -> None:
    async with running_sandbox(shared_keyset()) as sandbox, notify_worker(env, sandbox) as worker:
        app = application()
        await database.db["applications"].insert_one(app)
        event = review(app, "approved")
        ok = _handled("ok")
        for _ in range(3):
            await worker.runtime.bus.publish(event)
        await record(database, event.id, "sent")
        await worker.runtime.bus.publish(event)  # and once more after it is settled
        await eventually(lambda: _true_when(_handled("ok") - ok, 4))
        assert len(sandbox.state.messages) == 1
        assert sandbox.state.calls["subscribe_send"] == 1
        stored = await database.db["notifications"].find_one({"_id": event.id})
        assert stored["state"] == "sent" and stored["attempts"] == 1
        # The notification record is the claim: the bus wrote none for notify.
        assert await database.db["processed_events"].count_documents({"consumer": "notify"}) == 0


@pytest.mark.parametrize("attempt", [1, 2])
async def test_a_copy_arriving_while_another_sends_waits_for_its_answer(env, database, attempt: int) -> None:
    """A `sending` record younger than the grace belongs to a live sender: the copy is deferred (not counted
    as an attempt), finds the answer when it looks again, and neither sends nor marks the message unknown.
    Attempt 1's record is inserted; a later attempt's is `$set` over `retrying`, as the handler writes them
    (nx-27017 hands a datetime written by a top-level `$set` back as text: still a time, not "no time")."""
    async with (
        running_sandbox(shared_keyset()) as sandbox,
        notify_worker(env, sandbox, bus_retry_delay_ms=300) as worker,
    ):
        app = application()
        await database.db["applications"].insert_one(app)
        event = review(app, "approved")
        busy, ok = _handled("busy"), _handled("ok")
        now = datetime.now(UTC)
        # Another replica's attempt, recorded just now and still waiting for WeChat's answer.
        state = "sending" if attempt == 1 else "retrying"
        await database.db["notifications"].insert_one(
            {"_id": event.id, "kind": "review_approved", "state": state, "attempts": max(1, attempt - 1),
             "history": [], "created_at": now, "updated_at": now}
        )  # fmt: skip
        if attempt > 1:
            await database.db["notifications"].update_one(
                {"_id": event.id}, {"$set": {"state": "sending", "attempts": attempt, "updated_at": now}}
            )
        await worker.runtime.bus.publish(event)
        await eventually(lambda: _true_when(_handled("busy") - busy, 2))
        assert (await database.db["notifications"].find_one({"_id": event.id}))["state"] == "sending"
        # The other replica records WeChat's answer; the deferred copy then skips it.
        await database.db["notifications"].update_one({"_id": event.id}, {"$set": {"state": "sent"}})
        await eventually(lambda: _true_when(_handled("ok") - ok, 1))
        assert sandbox.state.calls["subscribe_send"] == 0
        stored = await database.db["notifications"].find_one({"_id": event.id})
        assert stored["state"] == "sent" and stored.get("reason") is None


def _handled(outcome: str) -> float:
    """This process's count of notify's review.decided.v1 deliveries with this outcome (take a difference:
    the counter is process-wide)."""
    return sum(
        sample.value
        for metric in HANDLED.collect()
        for sample in metric.samples
        if sample.name == "bus_messages_total"
        and sample.labels == {"consumer": "notify", "type": "review.decided.v1", "outcome": outcome}
    )


async def _true_when(count: Any, expected: float) -> bool | None:
    value = await count if asyncio.iscoroutine(count) else count
    return True if value >= expected else None


class KillOnRecord(list):  # type: ignore[type-arg]
    """The sandbox's message list: kills the worker the moment WeChat has the message, before it answers."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid

    def append(self, item: Any) -> None:
        super().append(item)
        os.kill(self.pid, signal.SIGKILL)


async def test_a_crash_after_sending_does_not_send_again(env, subprocess_env, database) -> None:
    keyset = shared_keyset()
    async with running_sandbox(keyset) as sandbox:
        worker_env = {
            **subprocess_env,
            **client_env(keyset, api_base=sandbox.url),
            "NOTIFY_SENDING_GRACE_S": "1",
            "HTTP_PORT": str(free_port()),
        }
        app = application()
        await database.db["applications"].insert_one(app)
        first = await ServiceProcess("services.notify", worker_env).start()
        second = None
        try:
            await first.wait_for_log("notify ready")
            assert first.proc is not None
            sandbox.state.messages = KillOnRecord(first.proc.pid)
            event = review(app, "rejected", reason="背景不均匀")
            await _publish(env["AMQP_URL"], event)
            assert await first.wait() == -signal.SIGKILL
            assert len(sandbox.state.messages) == 1
            stored = await database.db["notifications"].find_one({"_id": event.id})
            assert stored["state"] == "sending"  # WeChat has it; the worker never heard back

            sandbox.state.messages = list(sandbox.state.messages)
            port = free_port()
            second = await ServiceProcess("services.notify", {**worker_env, "HTTP_PORT": str(port)}).start()
            await second.wait_for_log("notify ready")
            line = await second.wait_for_log("earlier attempt may have been delivered, not resending")
            assert line["event_id"] == event.id
            stored = await record(database, event.id, "unknown")
            assert stored["reason"] == "interrupted_after_send"
            assert len(sandbox.state.messages) == 1 and sandbox.state.calls["subscribe_send"] == 1
            ready = await get_json(f"http://127.0.0.1:{port}/readyz")
            assert ready["checks"] == {"database": True, "broker": True, "consuming": True}
            # Nothing in the worker's log names the student's account.
            assert not any(OPENID in str(line) for line in [*first.lines, *second.lines])
        finally:
            await first.stop()
            if second is not None:
                await second.stop()


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return await resp.json()


async def _publish(amqp_url: str, event: Envelope) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("events")
        await exchange.publish(
            aio_pika.Message(event.to_bytes(), message_id=event.id, type=event.type), routing_key=event.type
        )


async def _fault(sandbox: SandboxServer, errcode: int, count: int) -> None:
    """POST /sandbox/faults {subscribe_errcode, count}: the next `count` sends answer `errcode`."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.url}/sandbox/faults", json={"subscribe_errcode": errcode, "count": count}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_each_error_code_takes_its_path(env, database) -> None:
    async with running_sandbox(shared_keyset()) as sandbox, notify_worker(env, sandbox) as worker:
        db = database.db
        app = application()
        unbound = application(owner_openid=None)
        await db["applications"].insert_many([app, unbound])
        publish = worker.runtime.bus.publish

        # 43101: the student has no subscription left; recorded, never retried.
        await _fault(sandbox, 43101, 1)
        event = review(app)
        await publish(event)
        stored = await record(database, event.id, "not_deliverable")
        assert stored["errcode"] == 43101 and stored["reason"] == "user_refused" and stored["attempts"] == 1

        # 45011 twice, then WeChat takes it: two retries through the retry queue.
        await _fault(sandbox, 45011, 2)
        event = review(app)
        await publish(event)
        stored = await record(database, event.id, "sent")
        assert stored["attempts"] == 3 and [h["errcode"] for h in stored["history"]] == [45011, 45011]

        # -1 (system busy) once: retried, then sent.
        await _fault(sandbox, -1, 1)
        event = review(app)
        await publish(event)
        stored = await record(database, event.id, "sent")
        assert stored["attempts"] == 2

        # 45009 on every attempt (BUS_MAX_ATTEMPTS=3): failed, parked in notify.dead for operators.
        await _fault(sandbox, 45009, 3)
        event = review(app)
        await publish(event)
        stored = await record(database, event.id, "failed")
        assert stored["attempts"] == 3 and stored["errcode"] == 45009
        assert await _dead_count(env["AMQP_URL"]) == 1

        # 47003: WeChat refused the content; recorded with its errcode, not retried.
        await _fault(sandbox, 47003, 1)
        event = review(app)
        await publish(event)
        stored = await record(database, event.id, "rejected")
        assert stored["errcode"] == 47003 and stored["attempts"] == 1

        # Nobody bound to the application (the student unbound): not deliverable, WeChat not called.
        calls = sandbox.state.calls["subscribe_send"]
        event = order_paid(unbound)
        await publish(event)
        stored = await record(database, event.id, "not_deliverable")
        assert stored["reason"] == "no_account_bound" and stored["attempts"] == 0
        # A school without templates: skipped, recorded.
        other = application(school_code="99999")
        await db["applications"].insert_one(other)
        event = review(other)
        await publish(event)
        stored = await record(database, event.id, "skipped")
        assert stored["reason"] == "no_template"
        assert sandbox.state.calls["subscribe_send"] == calls
        await asyncio.sleep(0.3)
        # Sent: the 45011 and the -1 events; refused: 1 + 2 + 1 + 3 + 1.
        assert len(sandbox.state.messages) == 2 and len(sandbox.state.rejected_messages) == 8


async def _dead_count(amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("notify.dead", passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_token_expiry_mid_run_is_recovered(env, database) -> None:
    async with running_sandbox(shared_keyset()) as sandbox, notify_worker(env, sandbox) as worker:
        app = application()
        await database.db["applications"].insert_one(app)

        async def send(n: int) -> None:
            events = [review(app) for _ in range(n)]
            for event in events:
                await worker.runtime.bus.publish(event)
            for event in events:
                await record(database, event.id, "sent")

        await send(5)
        assert worker.client.tokens.refreshes == 1
        for errcode in (42001, 40001):
            for token in sandbox.state.tokens.values():  # what POST /sandbox/tokens/expire does
                if errcode == 40001:
                    token.invalid = True
                else:
                    token.expires_at = 0
            sandbox.state.stable_token = None
            await send(5)
        assert len(sandbox.state.messages) == 15
        assert worker.client.tokens.refreshes == 3  # one per expiry, shared by the messages in flight
        assert await database.db["notifications"].count_documents({"attempts": 1, "state": "sent"}) == 15


async def test_a_burst_of_500_keeps_to_the_send_rate(env, database) -> None:
    rate = 200.0
    async with (
        running_sandbox(shared_keyset()) as sandbox,
        notify_worker(env, sandbox, notify_send_rate=rate, bus_prefetch=50) as worker,
    ):
        app = application()
        await database.db["applications"].insert_one(app)
        events = [review(app) for _ in range(500)]
        await worker.runtime.bus.publish_many(events)

        async def all_sent() -> bool | None:
            return True if len(sandbox.state.messages) >= 500 else None

        await eventually(all_sent, timeout=60)
        await asyncio.sleep(0.2)
        assert len(sandbox.state.messages) == 500
        times = sorted(m["received_at"] for m in sandbox.state.messages)
        # In any one second, at most `rate` messages (plus one for the window's edges and clock jitter).
        j = 0
        busiest = 0
        for i, t in enumerate(times):
            while times[j] <= t - 1.0:
                j += 1
            busiest = max(busiest, i - j + 1)
        assert busiest <= rate * 1.02 + 1, busiest
        assert times[-1] - times[0] >= 499 / rate * 0.95
        assert await database.db["notifications"].count_documents({"state": "sent"}) == 500


async def test_a_paid_order_reaches_the_student_and_the_status_does_not_depend_on_it(env) -> None:
    from tests.support.system import ROSTER_ROW, SECOND_ROW, running_system

    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        sandbox = system.sandbox
        strict_templates(sandbox)
        async with notify_worker(env, sandbox) as worker:
            db = worker.runtime.database.db
            student = await system.paid_student("oStudent_paid_0000000000001")
            message = await eventually(lambda: _first(sandbox.state.messages))
            assert message["touser"] == student.openid and message["template_id"] == "demo_order_paid"
            assert message["data"]["name2"] == {"value": "赵**"}
            assert message["data"]["amount3"]["value"].startswith("¥")
            stored = await db["notifications"].find_one({"kind": "order_paid"})
            assert (
                stored["state"] == "sent"
                and stored["application_id"] == (await student.status())["application_id"]
            )

            # The student refused further messages: nothing arrives, the status says the same.
            await _fault(sandbox, 43101, 1)
            other = await system.paid_student("oStudent_paid_0000000000002", SECOND_ROW)
            stored = await eventually(
                lambda: db["notifications"].find_one({"kind": "order_paid", "state": "not_deliverable"})
            )
            assert stored["errcode"] == 43101
            assert len(sandbox.state.messages) == 1
            assert (await other.status())["state"] == (await student.status())["state"] == "paid"


async def _first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None
