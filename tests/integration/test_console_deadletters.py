"""Console: the dead-letter browser on the real broker: list, browse (nothing consumed), redrive, discard."""

from __future__ import annotations

import asyncio
import json

import aio_pika

from services.gateway.console.operators import Role
from shared.events import ReviewDecided, make_event
from tests.support.console import operator
from tests.support.system import running_system


async def park(env: dict[str, str], queue: str, body: bytes, message_id: str, **headers) -> None:
    connection = await aio_pika.connect(env["AMQP_URL"])
    try:
        channel = await connection.channel()
        message = aio_pika.Message(body, message_id=message_id, headers=headers)
        await channel.default_exchange.publish(message, routing_key=queue)
    finally:
        await connection.close()


async def take_all(env: dict[str, str], queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(env["AMQP_URL"])
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=False)
        found = []
        for _ in range(50):
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                found.append(message)
            if found:
                break
            await asyncio.sleep(0.1)
        return found
    finally:
        await connection.close()


async def test_dead_letters_are_browsed_redriven_and_discarded_with_audit(env):
    async with running_system(env, with_codec=False) as system:
        event = make_event(
            ReviewDecided(
                review_id="r1", photo_id="p1", student_id="s1", decision="approved", operator_id="op"
            ),
            application_id="app-1",
        )
        history = json.dumps([{"attempt": 5, "error": "WeChat 43101: user refused"}])
        await park(
            env,
            "notify.dead",
            event.model_dump_json().encode(),
            event.id,
            **{"x-attempt": 5, "x-dead-reason": "WeChat 43101", "x-history": history},
        )
        await park(env, "notify.dead", b"<not json>", "bad-1", **{"x-dead-reason": "malformed"})
        admin = await operator(system, "root@example.com", Role.ADMIN, [])
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])

        assert (await reviewer.request("GET", "/console/api/v1/deadletters/notify"))[0] == 403
        assert (await admin.request("GET", "/console/api/v1/deadletters/nobody"))[0] == 404
        status, queues = await admin.request("GET", "/console/api/v1/deadletters")
        assert status == 200 and {q["consumer"]: q["messages"] for q in queues["queues"]}["notify"] == 2
        for _ in range(2):  # browsing twice shows the same messages: looking consumes nothing
            status, page = await admin.request("GET", "/console/api/v1/deadletters/notify")
            assert status == 200 and len(page["messages"]) == 2
        letters = {m["event_id"]: m for m in page["messages"]}
        good = letters[event.id]
        assert (
            good["type"] == "review.decided.v1" and good["attempts"] == 5 and good["reason"] == "WeChat 43101"
        )
        assert good["payload"]["decision"] == "approved" and good["history"][0]["attempt"] == 5
        assert letters["bad-1"]["payload"] == "<not json>" and letters["bad-1"]["type"] is None

        # Redrive: the same event id back on the exchange under its type; it reaches notify again.
        url = f"/console/api/v1/deadletters/notify/{event.id}/redrive"
        assert (await reviewer.request("POST", url))[0] == 403
        assert (await admin.request("POST", url, csrf="nope"))[0] == 403
        status, redriven = await admin.request("POST", url)
        assert status == 200 and redriven["routing_key"] == "review.decided.v1"
        [delivered] = await take_all(env, "notify")
        assert delivered.message_id == event.id and json.loads(delivered.body)["id"] == event.id
        assert "x-dead-reason" not in (delivered.headers or {})
        assert (await admin.request("POST", url))[1]["code"] == "dead_letter_not_found"

        # A message without a type cannot be routed; it can be discarded.
        status, body = await admin.request("POST", "/console/api/v1/deadletters/notify/bad-1/redrive")
        assert status == 404
        status, _ = await admin.request("POST", "/console/api/v1/deadletters/notify/bad-1/discard")
        assert status == 200
        assert (await admin.request("GET", "/console/api/v1/deadletters/notify"))[1]["messages"] == []

        audit = system.gateway.database.db["audit_log"]
        redrive = await audit.find_one({"action": "deadletter.redrive"})
        discard = await audit.find_one({"action": "deadletter.discard"})
        assert redrive["target"]["event_id"] == event.id and redrive["operator_id"] == admin.operator_id
        assert redrive["target"]["application_id"] == "app-1" and discard["target"]["event_id"] == "bad-1"


async def test_redrive_of_a_type_nobody_consumes_is_refused_and_the_message_stays(env):
    async with running_system(env, with_codec=False) as system:
        stray = make_event(
            ReviewDecided(
                review_id="r2", photo_id="p2", student_id="s2", decision="approved", operator_id="op"
            ),
            application_id="app-2",
        )
        body = json.loads(stray.model_dump_json())
        body["type"] = "nobody.listens.v1"  # parked by a consumer whose binding has since gone
        await park(
            env,
            "notify.dead",
            json.dumps(body).encode(),
            stray.id,
            **{"x-dead-reason": "gone", "x-attempt": 1},
        )
        admin = await operator(system, "root@example.com", Role.ADMIN, [])
        url = f"/console/api/v1/deadletters/notify/{stray.id}/redrive"
        status, answer = await admin.request("POST", url)
        assert status == 409 and answer["code"] == "dead_letter_unroutable", answer
        # Still parked, unchanged; the refused attempt is audited as failed.
        status, page = await admin.request("GET", "/console/api/v1/deadletters/notify")
        [letter] = page["messages"]
        assert letter["event_id"] == stray.id and letter["reason"] == "gone" and letter["attempts"] == 1
        audit = system.gateway.database.db["audit_log"]
        entry = await audit.find_one({"action": "deadletter.redrive"})
        assert entry["outcome"] == "failed" and entry["target"]["event_type"] == "nobody.listens.v1"
        # It can still be discarded.
        assert (await admin.request("POST", f"/console/api/v1/deadletters/notify/{stray.id}/discard"))[
            0
        ] == 200
