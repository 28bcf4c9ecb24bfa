"""The console's payments API over HTTP (issue 17 item 3): anomalies with their action, refunds, the daily
reconciliation and its CSV; admin and support only, audited, idempotent. Real nx-27017, RabbitMQ and
the WeChat sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.console.operators import Role
from tests.integration.test_journey import post_signed
from tests.integration.test_orders_money import confirmed, left_open_earlier_order, order, wait_until
from tests.support.console import operator
from tests.support.system import ROSTER_ROW, SECOND_ROW, running_system
from tests.support.wechat import shared_keyset

ANOMALIES = "/console/api/v1/payments/anomalies"


async def test_payments_anomalies_refund_once_reconciliation_and_roles(env):
    async with running_system(env, roster=[ROSTER_ROW, SECOND_ROW]) as system:
        db = system.gateway.database.db
        student = await confirmed(system, "o-console-pay")
        _, current = await order(student)
        earlier = await left_open_earlier_order(system, student)
        assert (await system.sandbox_call("POST", f"pay/{current['out_trade_no']}", {}))[0] == 200
        await student.wait_for_state("paid")
        # The stale order is paid while WeChat Pay fails the automatic refund: the refund stays requested.
        await system.sandbox_call(
            "POST", "faults", {"pay_status": 500, "pay_code": "SYSTEM_ERROR", "count": 1}
        )
        assert (await system.sandbox_call("POST", f"pay/{earlier}", {}))[0] == 200
        await wait_until(lambda: db["payment_anomalies"].find_one({"kind": "stale_order_paid"}))

        support = await operator(system, "cash@example.com", Role.SUPPORT, ["10487"])
        reviewer = await operator(system, "rev@example.com", Role.REVIEWER, ["10487"])
        stranger = await operator(system, "far@example.com", Role.SUPPORT, ["10001"])
        admin = await operator(system, "root@example.com", Role.ADMIN, [])

        status, listed = await support.request("GET", ANOMALIES)
        assert status == 200, listed
        [anomaly] = listed["anomalies"]
        assert anomaly["kind"] == "stale_order_paid" and anomaly["out_trade_no"] == earlier
        assert anomaly["action"] == "refund" and anomaly["refunds"][0]["status"] == "requested"
        assert (await reviewer.request("GET", ANOMALIES))[0] == 403
        assert (await stranger.request("GET", ANOMALIES))[1]["anomalies"] == []
        path = f"{ANOMALIES}/{anomaly['anomaly_id']}/refund"
        assert (await stranger.request("POST", path))[0] == 404
        assert (await reviewer.request("POST", path))[0] == 403
        assert (await support.request("POST", path, csrf=""))[0] == 403

        # Clicked twice at once: one refund at WeChat Pay.
        replies = await asyncio.gather(support.request("POST", path), support.request("POST", path))
        assert [s for s, _ in replies] == [200, 200], replies
        _, refunds = await system.sandbox_call("GET", "refunds")
        assert [r["out_trade_no"] for r in refunds["refunds"]] == [earlier]

        async def settled() -> Any:
            _, body = await support.request("GET", ANOMALIES)
            return body if body["anomalies"][0]["action"] == "none" else None

        after = await wait_until(settled)
        assert after["anomalies"][0]["refunds"][0]["status"] == "success"
        assert (await support.request("POST", path))[0] == 200  # a third click: still one refund
        _, refunds = await system.sandbox_call("GET", "refunds")
        assert len(refunds["refunds"]) == 1
        assert [r["status"] for r in (await student.status())["refunds"]] == ["success"]

        # An Idempotency-Key replays the first answer; reused for another request it is refused.
        keyed = {"Idempotency-Key": "click-1"}
        first = await support.request("POST", path, headers=keyed)
        assert first[0] == 200 and await support.request("POST", path, headers=keyed) == first
        other = await support.request("POST", f"{ANOMALIES}/nope/refund", headers=keyed)
        assert other[0] == 404

        # Refunds issued, and their state.
        status, issued = await support.request("GET", "/console/api/v1/payments/refunds")
        assert status == 200
        [refund] = issued["refunds"]
        assert (
            refund["out_trade_no"] == earlier
            and refund["kind"] == "stale_payment"
            and refund["status"] == "success"
        )
        assert (await stranger.request("GET", "/console/api/v1/payments/refunds"))[1]["refunds"] == []
        assert (await support.request("GET", "/console/api/v1/payments/refunds", params={"status": "nope"}))[
            0
        ] == 400

        # The day's reconciliation: two orders, two payments, one refunded, the net.
        status, summary = await support.request("GET", "/console/api/v1/payments/reconciliation")
        assert status == 200, summary
        total = summary["total"]
        assert (total["orders"], total["paid"], total["paid_fen"]) == (2, 2, 7000)
        assert (total["refunded"], total["refunded_fen"], total["net_fen"]) == (1, 3500, 3500)
        assert len(summary["days"]) == 30 and sum(d["paid"] for d in summary["days"]) == 2
        status, csv = await support.request(
            "GET",
            "/console/api/v1/payments/reconciliation.csv",
            params={"since": summary["until"], "until": summary["until"]},
        )
        assert status == 200
        text = csv.decode("utf-8-sig")
        lines = text.strip().split("\r\n")
        assert lines[0].startswith("日期,订单数") and lines[-1] == "合计,2,2,70.00,1,35.00,35.00"
        for bad in (
            {"since": "2025-13-01"},
            {"since": "2020-01-01"},
            {"since": "2025-06-02", "until": "2025-06-01"},
        ):
            assert (await support.request("GET", "/console/api/v1/payments/reconciliation", params=bad))[
                0
            ] == 400
        assert (await stranger.request("GET", "/console/api/v1/payments/reconciliation"))[1]["total"][
            "orders"
        ] == 0

        # A wrong amount: investigate, then resolve with a note (a repeat keeps the first).
        keyset = shared_keyset()
        second = await confirmed(system, "o-console-amount", SECOND_ROW)
        await system.sandbox_call("POST", "knobs", {"never_notify": True})
        _, pending = await order(second)
        wrong = {
            "out_trade_no": pending["out_trade_no"],
            "trade_state": "SUCCESS",
            "amount": {"total": 1},
            "transaction_id": "4200000000000000000000000042",
            "payer": {"openid": "o-console-amount"},
            "appid": keyset.appid,
            "mchid": keyset.mchid,
        }
        assert await post_signed(system, keyset, wrong) == 204
        _, listed = await admin.request("GET", ANOMALIES)
        mismatch = next(a for a in listed["anomalies"] if a["kind"] == "amount_mismatch")
        assert mismatch["action"] == "investigate" and mismatch["details"]["total_fen"] == 1
        refused = await admin.request("POST", f"{ANOMALIES}/{mismatch['anomaly_id']}/refund")
        assert (refused[0], refused[1]["code"]) == (409, "anomaly_not_refundable")
        resolve = f"{ANOMALIES}/{mismatch['anomaly_id']}/resolve"
        assert (await admin.request("POST", resolve, json={"note": "x"}))[0] == 400
        status, resolved = await admin.request("POST", resolve, json={"note": "银行流水核对无误"})
        assert status == 200 and resolved["resolved"] and resolved["action"] == "none"
        _, again = await admin.request("POST", resolve, json={"note": "another"})
        assert again["resolution"]["note"] == "银行流水核对无误"
        assert [a["kind"] for a in (await admin.request("GET", ANOMALIES))[1]["anomalies"]] == [
            "stale_order_paid"
        ]

        actions = [
            d["action"]
            async for d in db["audit_log"].find(
                {"operator_id": {"$in": [support.operator_id, admin.operator_id]}}
            )
        ]
        assert {
            "payments.anomalies_view",
            "payment.refund",
            "payments.refunds_view",
            "payments.reconciliation_view",
            "payments.reconciliation_export",
            "payment.anomaly_resolve",
        } <= set(actions)
        assert actions.count("payment.refund") >= 4

        # The console's OpenAPI document describes the payments routes.
        status, document = await admin.request("GET", "/console/api/v1/openapi.json")
        assert status == 200
        for route in (
            ANOMALIES,
            f"{ANOMALIES}/{{anomaly_id}}/refund",
            "/console/api/v1/payments/reconciliation.csv",
        ):
            assert route in document["paths"], route
