"""The contract end-to-end test of the mini-program (part of `make test`; `make client-e2e` runs it alone).

The real page logic (miniprogram/logic) drives a Node `wx` over real HTTP against a stack started like
`make run` (tests/client/stack.py): the whole journey and each variant the issue names, a scripted reviewer
deciding through the console API, WeChat's part played by the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.client.__main__ import MINIPROGRAM, plan
from tests.client.stack import SCENARIOS, ClientStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_ready() -> None:
    if not (MINIPROGRAM / "node_modules" / ".installed").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=MINIPROGRAM, check=True
        )
        (MINIPROGRAM / "node_modules" / ".installed").touch()


@pytest.mark.timeout(900)
async def test_every_journey_reaches_approval(node_ready: None, tmp_path: Path) -> None:
    stack = ClientStack()
    students = plan(len(SCENARIOS), stack.run_tag)
    try:
        await stack.start(students)
        config = tmp_path / "journeys.json"
        details = tmp_path / "details.json"
        config.write_text(json.dumps(stack.journey_config(students, details), ensure_ascii=False))
        done = await asyncio.to_thread(
            subprocess.run,
            ["node", str(MINIPROGRAM / "e2e" / "run.js"), str(config)],
            capture_output=True,
            text=True,
            timeout=800,
        )
        messages = await asyncio.to_thread(stack.sandbox_messages)
        orders = await asyncio.to_thread(stack.sandbox_orders)
    finally:
        await stack.stop()
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-6000:]
    assert summary["journeys"] == summary["passed"] == len(SCENARIOS)
    assert summary["final_states"] == ["approved"] * len(SCENARIOS)
    results = {r["scenario"]: r for r in json.loads(details.read_text())}
    assert set(results) == set(SCENARIOS)
    by_openid = {s.openid: s for s in students}
    # WeChat (the sandbox) delivered a review-result message to every student; one payment each, even
    # for the student who cancelled the cashier first.
    reviewed = {m["touser"] for m in messages if "review" in m["template_id"]}
    assert reviewed == set(by_openid)
    paid = [o for o in orders if o["payer"]["openid"] in by_openid]
    assert sorted(o["trade_state"] for o in paid) == ["SUCCESS"] * len(SCENARIOS)
    # The variants went where they say: a refusal then a retake; a failed comparison, the registrar.
    steps = {name: [s["step"] for s in r["steps"]] for name, r in results.items()}
    assert steps["quality_retake"].count("standardise") == 2
    assert steps["match_retake"].count("submit") == 2
    assert "pay_cancelled" in steps["pay_cancel"]
    assert "withdraw" in steps["withdraw"] and steps["withdraw"].count("submit") == 2
    # The subscribe-message permission was asked at the two taps WeChat allows (payment, submission).
    assert all(r["subscribe_requests"] >= 2 for r in results.values())
