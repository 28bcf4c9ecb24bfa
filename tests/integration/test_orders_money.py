"""Orders and money over HTTP, on the real nx-27017, RabbitMQ and the WeChat sandbox (issue 13 item 3).

Each test is named after the defect it pins; each failed on the code before the order ledger.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

from services.gateway.context import APPLICATIONS, PAY, SCHOOLS
from services.gateway.payments import new_out_trade_no, reconcile_once
from services.gateway.schools import demo_school
from shared.events import derived_id, utcnow
from tests.integration.test_journey import post_signed
from tests.support.system import SECOND_ROW, Student, System, running_system
from tests.support.wechat import shared_keyset


async def confirmed(system: System, openid: str, row: dict[str, str] | None = None) -> Student:
    student = await system.verified_student(openid, row)
    status, body = await student.request("POST", "/api/v1/application/confirm", json={})
    assert status == 200, body
    return student


async def order(student: Student, key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Idempotency-Key": key} if key else {}
    status, body = await student.request("POST", "/api/v1/orders", headers=headers)
    return status, body


async def document(system: System, student: Student) -> dict[str, Any]:
    application_id = (await student.status())["application_id"]
    doc = await system.gateway.database.db["applications"].find_one({"_id": application_id})
    assert doc is not None
    return dict(doc)


async def sandbox_order(system: System, out_trade_no: str) -> dict[str, Any]:
    status, body = await system.sandbox_call("GET", f"orders/{out_trade_no}")
    assert status == 200, body
    return dict(body)


async def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


def ledger_of(doc: dict[str, Any]) -> Any:
    from services.gateway.domain.orders import OrderBook

    return OrderBook.from_document(doc)


async def left_open_earlier_order(system: System, student: Student) -> str:
    """An earlier order still open at WeChat next to the current one: what the code before the ledger
    left behind (it issued a new out_trade_no for another key and never closed the first). Placed at
    the sandbox for real and recorded in the ledger as the migration keeps it."""
    from services.gateway.domain.orders import Order, OrderBook, OrderStatus

    doc = await document(system, student)
    book = OrderBook.from_document(doc)
    current = book.current
    assert current is not None
    earlier_no = new_out_trade_no(utcnow() - timedelta(minutes=5))
    await system.gateway.app[PAY].create_jsapi_order(
        earlier_no, "毕业照片采集服务", current.amount_fen, student.openid, time_expire=current.expires_at
    )
    earlier = Order(
        order_id=derived_id("order", earlier_no),
        out_trade_no=earlier_no,
        amount_fen=current.amount_fen,
        status=OrderStatus.PENDING,
        created_at=current.created_at - timedelta(minutes=5),
        expires_at=current.expires_at,
        created_by=student.openid,
        prepay_id="wx-earlier",
    )
    ledger = OrderBook((earlier, *book.orders))
    from services.gateway.store import Change

    await system.gateway.app[APPLICATIONS].mutate(doc["_id"], lambda _: Change(set=ledger.fields()))
    return earlier_no


# --- double charge ----------------------------------------------------------------------------------


async def test_double_charge_another_idempotency_key_gets_the_same_open_order(env):
    async with running_system(env) as system:
        student = await confirmed(system, "o-keys")
        status, first = await order(student, "K1")
        assert status == 201, first
        status, second = await order(student, "K2")
        assert status == 200, second
        assert second["out_trade_no"] == first["out_trade_no"]  # one open order, not a second charge
        status, unkeyed = await order(student)
        assert status == 200 and unkeyed["out_trade_no"] == first["out_trade_no"]
        doc = await document(system, student)
        assert [o["out_trade_no"] for o in doc["orders"]] == [first["out_trade_no"]]
        _, orders = await system.sandbox_call("GET", "orders")
        assert len(orders["orders"]) == 1


async def test_double_charge_four_concurrent_orders_without_a_key_give_one_payable_order(env):
    async with running_system(env) as system:
        student = await confirmed(system, "o-four")
        replies = await asyncio.gather(*(order(student) for _ in range(4)))
        assert sorted(s for s, _ in replies) == [200, 200, 200, 201], replies
        assert len({b["out_trade_no"] for _, b in replies}) == 1
        _, orders = await system.sandbox_call("GET", "orders")
        assert [o["trade_state"] for o in orders["orders"]] == ["NOTPAY"]
        doc = await document(system, student)
        assert len(doc["orders"]) == 1 and doc["payments_unsettled"] == 1


async def test_double_charge_replacing_an_order_closes_the_first_at_wechat_and_keeps_it(env):
    async with running_system(env) as system:
        student = await confirmed(system, "o-replace")
        status, first = await order(student, "K1")
        assert status == 201
        # The school's fee changes: the open order no longer fits and is replaced.
        await system.gateway.app[SCHOOLS].put(demo_school().model_copy(update={"fee_fen": 4200}))
        status, second = await order(student, "K2")
        assert status == 201, second
        assert second["out_trade_no"] != first["out_trade_no"] and second["amount_fen"] == 4200
        assert (await sandbox_order(system, first["out_trade_no"]))["trade_state"] == "CLOSED"
        status, refused = await system.sandbox_call("POST", f"pay/{first['out_trade_no']}", {})
        assert (status, refused["code"]) == (409, "ORDER_NOT_PAYABLE")  # the stale one cannot be paid
        doc = await document(system, student)
        ledger = {o["out_trade_no"]: o for o in doc["orders"]}
        assert ledger[first["out_trade_no"]]["status"] == "closed"
        assert ledger[first["out_trade_no"]]["close_reason"] == "superseded"
        assert doc["order"]["out_trade_no"] == second["out_trade_no"] and doc["payments_unsettled"] == 1
        # Paying the new one pays the application.
        assert (await system.sandbox_call("POST", f"pay/{second['out_trade_no']}", {}))[0] == 200
        paid = await student.wait_for_state("paid")
        assert paid["order"]["out_trade_no"] == second["out_trade_no"] and paid["refunds"] == []


async def test_double_charge_an_order_paid_while_being_replaced_is_applied_not_replaced(env):
    async with running_system(env) as system:
        student = await confirmed(system, "o-race")
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        _, first = await order(student)
        assert (await system.sandbox_call("POST", f"pay/{first['out_trade_no']}", {}))[0] == 200
        await system.gateway.app[SCHOOLS].put(demo_school().model_copy(update={"fee_fen": 4200}))
        status, refused = await order(student)
        # Closing it at WeChat found it paid: the payment is applied, nothing new is issued.
        assert (status, refused["code"], refused["details"]["reason"]) == (
            409,
            "illegal_transition",
            "already_paid",
        )
        assert (await student.status())["state"] == "paid"
        _, orders = await system.sandbox_call("GET", "orders")
        assert len(orders["orders"]) == 1


async def test_double_charge_paying_a_superseded_order_is_refunded_automatically(env):
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await confirmed(system, "o-stale")
        _, current = await order(student)
        earlier = await left_open_earlier_order(system, student)
        assert (await system.sandbox_call("POST", f"pay/{current['out_trade_no']}", {}))[0] == 200
        await student.wait_for_state("paid")
        # The student pays the forgotten one too: it is recognised, refunded, and the student told.
        assert (await system.sandbox_call("POST", f"pay/{earlier}", {}))[0] == 200

        async def refunded() -> Any:
            status = await student.status()
            return status if status["refunds"] and status["refunds"][0]["status"] == "success" else None

        status = await wait_until(refunded)
        [notice] = status["refunds"]
        assert notice["out_trade_no"] == earlier and notice["kind"] == "stale_payment"
        assert notice["amount_fen"] == 3500 and "退回" in notice["message"]
        assert status["state"] == "paid" and status["order"]["out_trade_no"] == current["out_trade_no"]
        _, refunds = await system.sandbox_call("GET", "refunds")
        [refund] = refunds["refunds"]
        assert (
            refund["out_trade_no"] == earlier
            and refund["amount"]["refund"] == 3500
            and refund["status"] == "SUCCESS"
        )
        assert (await sandbox_order(system, earlier))["trade_state"] == "REFUND"
        anomaly = await db["payment_anomalies"].find_one({"out_trade_no": earlier})
        assert anomaly["kind"] == "stale_order_paid" and anomaly["application_id"] == status["application_id"]
        assert await db["payment_anomalies"].count_documents({"kind": "unknown_order"}) == 0
        doc = await document(system, student)
        assert doc["payments_unsettled"] == 0
        # WeChat's duplicate and a replay of the payment notification refund nothing more.
        _, sent = await system.sandbox_call("GET", f"notifications?out_trade_no={earlier}")
        payment = next(n for n in sent["notifications"] if n["event_type"] == "TRANSACTION.SUCCESS")
        await system.sandbox_call("POST", f"notifications/{payment['id']}/resend", {})
        await system.sandbox_call("POST", f"notifications/{payment['id']}/replay", {})
        await asyncio.sleep(0.3)
        _, refunds = await system.sandbox_call("GET", "refunds")
        assert len(refunds["refunds"]) == 1
        assert len((await student.status())["refunds"]) == 1


async def test_reconciliation_covers_every_recorded_order_not_only_the_current_one(env):
    async with running_system(env) as system:
        app = system.gateway.app
        student = await confirmed(system, "o-recon-all")
        _, current = await order(student)
        earlier = await left_open_earlier_order(system, student)
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        # Both paid at WeChat, neither notified: only asking WeChat about every order finds both.
        for no in (current["out_trade_no"], earlier):
            assert (await system.sandbox_call("POST", f"pay/{no}", {}))[0] == 200
        counts = await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        )
        assert counts.get("paid") == 1 and counts.get("stale_payment_refunding") == 1, counts
        status = await student.status()
        assert status["state"] == "paid" and status["order"]["out_trade_no"] == current["out_trade_no"]
        assert [r["out_trade_no"] for r in status["refunds"]] == [earlier]
        # The refund's result is asked for too (its notification never comes), then nothing is left.
        await asyncio.sleep(0.2)
        counts = await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        )
        assert counts == {"refund_success": 1}, counts
        assert (await student.status())["refunds"][0]["status"] == "success"
        assert (
            await reconcile_once(
                system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
            )
            == {}
        )


async def test_an_expired_order_is_closed_at_wechat_by_reconciliation(env):
    async with running_system(env) as system:
        app = system.gateway.app
        student = await confirmed(system, "o-expired")
        _, current = await order(student)
        doc = await document(system, student)
        book = ledger_of(doc)
        from dataclasses import replace

        from services.gateway.store import Change

        assert book.current is not None
        expired = book.put(replace(book.current, expires_at=utcnow() - timedelta(seconds=1)))
        await app[APPLICATIONS].mutate(doc["_id"], lambda _: Change(set=expired.fields()))
        counts = await reconcile_once(
            system.gateway.database, app[APPLICATIONS], app[PAY], older_than=timedelta(0)
        )
        assert counts == {"closed": 1}
        assert (await sandbox_order(system, current["out_trade_no"]))["trade_state"] == "CLOSED"
        doc = await document(system, student)
        assert doc["order"]["status"] == "closed" and doc["order"]["close_reason"] == "expired"
        # The next request issues a new order (the closed one stays in the ledger).
        status, fresh = await order(student)
        assert status == 201 and fresh["out_trade_no"] != current["out_trade_no"]
        assert len((await document(system, student))["orders"]) == 2


# --- refunds ------------------------------------------------------------------------------------------


async def test_a_partial_refund_is_partial_and_a_whole_refund_withdraws_the_application(env):
    from services.gateway.console.operators import Role
    from tests.support.console import operator

    async with running_system(env) as system:
        student = await system.paid_student("o-partial")
        application_id = (await student.status())["application_id"]
        support = await operator(system, "pay@example.com", Role.SUPPORT, ["10487"])
        path = f"/console/api/v1/applications/{application_id}/refund"
        status, partial = await support.request("POST", path, json={"reason": "退加急费", "amount_fen": 1000})
        assert status == 200, partial
        assert partial["refund"]["amount_fen"] == 1000 and partial["refund"]["out_refund_no"].endswith("-R1")

        async def order_status(expected: str) -> Any:
            current = await student.status()
            return current if current["order"]["status"] == expected else None

        after_partial = await wait_until(lambda: order_status("partially_refunded"))
        assert after_partial["state"] == "paid"  # still collecting: only part went back
        status, rest = await support.request("POST", path, json={"reason": "学生申请退款"})
        assert status == 200 and rest["refund"]["amount_fen"] == 2500, rest
        withdrawn = await wait_until(lambda: order_status("refunded"))
        assert withdrawn["state"] == "refunded" and withdrawn["next"]["action"] == "refunded"
        assert [r["amount_fen"] for r in withdrawn["refunds"]] == [1000, 2500]
        status, nothing = await support.request("POST", path, json={"reason": "再退一次"})
        assert (status, nothing["code"]) == (409, "nothing_to_refund")
        _, refunds = await system.sandbox_call("GET", "refunds")
        assert sorted(r["amount"]["refund"] for r in refunds["refunds"]) == [1000, 2500]
        # Withdrawn: no more photos, no review, no export.
        status, refused = await student.request("POST", "/api/v1/orders")
        assert (status, refused["details"]["reason"]) == (409, "refunded")


async def test_a_refunded_application_leaves_the_export_and_print_queues(env):
    from services.gateway.console.batches import Batches, ready_filter
    from services.gateway.store import Change

    async with running_system(env) as system:
        app = system.gateway.app
        student = await system.paid_student("o-export")
        doc = await document(system, student)
        await app[APPLICATIONS].mutate(doc["_id"], lambda _: Change(set={"state": "approved"}))
        batches = Batches(system.gateway.database, app[APPLICATIONS])
        assert await batches.ready("10487") == 1
        # Claimed into a batch, then refunded: out of the batch's files, listed as withdrawn.
        batch_id = await batches.open("10487", "op")
        assert await batches.claim(batch_id, doc["_id"])
        from services.gateway.payments import Payments

        payments = Payments(system.gateway.database, app[APPLICATIONS], app[PAY])
        _, _, refund = await payments.refund(doc["_id"], reason="学生申请退款", operator_id="op")
        assert refund.status in ("processing", "success")
        refunded = await student.wait_for_state("refunded")
        assert refunded["next"]["action"] == "refunded"
        assert await batches.members(batch_id) == [] and await batches.withdrawn(batch_id) == [doc["_id"]]
        db = system.gateway.database.db
        assert await db["applications"].count_documents(ready_filter("10487")) == 0


# --- notifications -------------------------------------------------------------------------------------


async def test_a_notification_for_another_appid_or_mchid_is_not_applied(env):
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await confirmed(system, "o-merchant")
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        _, current = await order(student)
        keyset = shared_keyset()
        base = {
            "out_trade_no": current["out_trade_no"],
            "trade_state": "SUCCESS",
            "amount": {"total": 3500},
            "transaction_id": "4200000000000000000000000099",
            "payer": {"openid": "o-merchant"},
        }
        for appid, mchid, kind in (
            ("wxother", keyset.mchid, "appid_mismatch"),
            (keyset.appid, "1999999999", "mchid_mismatch"),
        ):
            assert await post_signed(system, keyset, {**base, "appid": appid, "mchid": mchid}) == 400
            assert await db["payment_anomalies"].count_documents({"kind": kind}) == 1
        assert (await student.status())["state"] == "confirmed"
        # Ours: applied.
        assert (
            await post_signed(system, keyset, {**base, "appid": keyset.appid, "mchid": keyset.mchid}) == 204
        )
        assert (await student.status())["state"] == "paid"


async def test_hostile_and_out_of_order_notifications_keep_the_ledger_true(env):
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await confirmed(system, "o-hostile")
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        _, current = await order(student)
        keyset = shared_keyset()
        no = current["out_trade_no"]
        common = {"appid": keyset.appid, "mchid": keyset.mchid}
        # No order number, a list for one, an amount as text: nothing applied, the application waits.
        for resource in (
            {**common, "trade_state": "SUCCESS"},
            {**common, "out_trade_no": ["GP"], "trade_state": "SUCCESS"},
            {
                **common,
                "out_trade_no": no,
                "trade_state": "SUCCESS",
                "amount": {"total": "3500"},
                "transaction_id": "t2",
            },
        ):
            assert await post_signed(system, keyset, resource) == 204
        assert await db["payment_anomalies"].count_documents({"kind": "amount_mismatch"}) == 1
        assert (await student.status())["state"] == "confirmed"
        paid = {
            **common,
            "out_trade_no": no,
            "trade_state": "SUCCESS",
            "amount": {"total": 3500},
            "transaction_id": "t3",
        }
        assert await post_signed(system, keyset, paid) == 204
        assert (await student.status())["state"] == "paid"
        # A refund result for a refund we never asked for (made on the merchant platform) is recorded.
        from sandbox.wechat.signing import notification_body, signature_headers
        from shared.wechat.crypto import load_private_key

        async def refund_notice(resource: dict[str, Any]) -> int:
            _, body = notification_body(
                event_type=f"REFUND.{resource['refund_status']}",
                summary="退款",
                original_type="refund",
                resource=resource,
                apiv3_key=keyset.apiv3_key,
            )
            headers = signature_headers(
                body,
                platform_key=load_private_key(keyset.platform_private_key),
                public_key_id=keyset.platform_public_key_id,
            )
            async with system.http.post(
                f"{system.base_url}/api/v1/pay/notify",
                data=body,
                headers={**headers, "Content-Type": "application/json"},
            ) as r:
                return r.status

        refund = {
            "mchid": keyset.mchid,
            "out_trade_no": no,
            "out_refund_no": "MP@2025|1",
            "amount": {"refund": 500},
        }
        assert await refund_notice({**refund, "refund_status": "SUCCESS"}) == 204
        assert await refund_notice({**refund, "refund_status": "PROCESSING"}) == 204  # late, out of order
        status = await student.status()
        assert status["order"]["status"] == "partially_refunded" and status["state"] == "paid"
        assert [(r["kind"], r["status"]) for r in status["refunds"]] == [("external", "success")]
        assert await refund_notice({**refund, "mchid": "1999999999", "refund_status": "SUCCESS"}) == 400


async def test_the_sandbox_takes_wechat_refund_numbers(env):
    async with running_system(env) as system:
        student = await system.paid_student("o-refund-no")
        doc = await document(system, student)
        pay = system.gateway.app[PAY]
        no = doc["order"]["out_trade_no"]
        for out_refund_no in ("R@1", "A|b*c_d-e@f", "x" * 64):
            answer = await pay.refund(no, out_refund_no, 1, 3500)
            assert answer["out_refund_no"] == out_refund_no and answer["status"] == "PROCESSING"
            assert (await pay.query_refund(out_refund_no))["out_refund_no"] == out_refund_no
        # Still refused: other characters, and more than 64.
        for bad in ("R#1", "退款1", "x" * 65, ""):
            status, body = await _raw_refund(system, no, bad)
            assert (status, body["code"]) == (400, "PARAM_ERROR"), bad


async def _raw_refund(system: System, out_trade_no: str, out_refund_no: str) -> tuple[int, dict[str, Any]]:
    """A refund request signed like the client's, bypassing its own number check."""
    import json

    pay = system.gateway.app[PAY]
    body = json.dumps(
        {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": 1, "total": 3500, "currency": "CNY"},
        }
    )
    path = "/v3/refund/domestic/refunds"
    headers = {
        "Authorization": pay.authorization("POST", path, body),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    async with system.http.post(f"{system.sandbox.url}{path}", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


# --- idempotency keys ---------------------------------------------------------------------------------


async def test_the_same_key_with_another_request_is_refused(env):
    async with running_system(env) as system:
        student = await confirmed(system, "o-reused")
        status, first = await order(student, "K1")
        assert status == 201
        status, again = await order(student, "K1")
        assert (status, again) == (201, first)  # the first answer, byte for byte
        status, refused = await student.request(
            "POST", "/api/v1/orders", headers={"Idempotency-Key": "K1"}, json={"different": True}
        )
        assert (status, refused["code"]) == (409, "idempotency_key_reused")
        assert len((await document(system, student))["orders"]) == 1


async def test_every_ordering_of_two_keys_and_a_repeat_ends_paid_with_no_charge_kept(env):
    """K1, K2 and K1 again in every order, the school's fee changing between the first two (so the
    second may replace the first), every answer paid as a student would try: nothing ends stuck and
    every payment but the application's own is refunded."""
    async with running_system(env) as system:
        sequences = sorted(set(itertools.permutations(["K1", "K2", "K1"])))
        for n, sequence in enumerate(sequences):
            await system.gateway.app[SCHOOLS].put(demo_school())
            row = None
            if n:  # a fresh roster row per sequence keeps the students apart
                row = {**SECOND_ROW, "student_number": f"21102160{60 + n}", "name": f"钱小{n}"}
                from services.gateway.roster import import_roster
                from tests.support.codes import blank_image

                await import_roster(
                    system.gateway.database,
                    system.gateway.blobs,
                    "10487",
                    [row],
                    {row["student_number"]: blank_image()},
                )
            student = await confirmed(system, f"o-order-{n}", row)
            answers = []
            for step, key in enumerate(sequence):
                if step == 1:
                    await system.gateway.app[SCHOOLS].put(demo_school().model_copy(update={"fee_fen": 4000}))
                status, body = await order(student, key)
                assert status in (200, 201), (sequence, body)
                answers.append(body)
            # The student tries to pay every order they were handed.
            for body in answers:
                await system.sandbox_call("POST", f"pay/{body['out_trade_no']}", {})
            final = await student.wait_for_state("paid")
            doc = await document(system, student)
            book = ledger_of(doc)
            paid = [o for o in book.orders if o.payment is not None]
            assert (
                book.paid_order is not None and final["order"]["out_trade_no"] == book.paid_order.out_trade_no
            )
            # Every other paid order is refunded (or on its way back).
            for other in paid:
                if other.out_trade_no != book.paid_order.out_trade_no:
                    assert other.refundable_fen == 0, (sequence, other)
            assert sum(1 for o in book.orders if o.open) == 0, sequence
            _, held = await system.sandbox_call("GET", "orders")
            kept = [
                o
                for o in held["orders"]
                if o["trade_state"] == "SUCCESS"
                and o["out_trade_no"] != book.paid_order.out_trade_no
                and o["out_trade_no"] in {x.out_trade_no for x in book.orders}
            ]
            assert not kept, (sequence, kept)  # a stale payment is refunded: WeChat shows it as REFUND


async def test_a_key_used_again_after_rebinding_to_another_student_never_replays_the_first_students_order(
    env,
):
    """One WeChat account (a parent's phone) orders for one student under K1, unbinds, binds to another
    student and retries with K1: the first student's order (its number and payment parameters) must not
    come back as the second student's answer."""
    from tests.support.system import ROSTER_ROW

    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        first_student = await confirmed(system, "o-rebind")
        status, first = await order(first_student, "K1")
        assert status == 201, first
        status, unbound = await first_student.request("DELETE", "/api/v1/me/binding")
        assert status == 200, unbound
        second_student = await confirmed(system, "o-rebind", SECOND_ROW)
        status, replayed = await order(second_student, "K1")
        assert (status, replayed["code"]) == (409, "idempotency_key_reused"), replayed
        status, own = await order(second_student)
        assert status == 201 and own["out_trade_no"] != first["out_trade_no"], own
        doc = await document(system, second_student)
        assert [o["out_trade_no"] for o in doc["orders"]] == [own["out_trade_no"]]


async def test_a_refund_accepted_by_wechat_whose_answer_cannot_be_verified_is_not_closed_nor_made_twice(env):
    """WeChat took the refund (2xx) but its answer could not be verified (a platform key rotating, a
    proxy mangling it): the outcome is unknown, so the refund stays requested and is asked again under
    its own number. Closed, its success notification was ignored as a duplicate and a retry refunded the
    same part twice."""
    from services.gateway.console.operators import Role
    from tests.support.console import operator

    async with running_system(env) as system:
        student = await system.paid_student("o-unverified")
        application_id = (await student.status())["application_id"]
        support = await operator(system, "pay2@example.com", Role.SUPPORT, ["10487"])
        path = f"/console/api/v1/applications/{application_id}/refund"
        status, _ = await system.sandbox_call("POST", "faults", {"bad_response_signatures": 1})
        assert status == 200
        status, first = await support.request("POST", path, json={"reason": "退加急费", "amount_fen": 1000})
        assert status == 200, first
        assert first["refund"]["status"] == "requested" and first["refund"]["out_refund_no"].endswith("-R1")
        # Reconciliation asks again under R1: WeChat answers the refund it already has.
        await reconcile_once(
            system.gateway.database,
            system.gateway.app[APPLICATIONS],
            system.gateway.app[PAY],
            older_than=timedelta(0),
        )

        async def settled() -> Any:
            doc = await document(system, student)
            refunds = ledger_of(doc).current.refunds
            return refunds if refunds and refunds[0].status.value == "success" else None

        refunds = await wait_until(settled)
        assert [(r.out_refund_no.rsplit("-", 1)[1], r.amount_fen) for r in refunds] == [("R1", 1000)]
        _, sandbox_refunds = await system.sandbox_call("GET", "refunds")
        assert [r["amount"]["refund"] for r in sandbox_refunds["refunds"]] == [1000]
        assert (await student.status())["state"] == "paid"
