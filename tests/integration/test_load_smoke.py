"""`make load` in small: the harness starts the real system (its own RabbitMQ node, nx-27017, sandbox,
gateway and every worker), a few students go through the whole journey, the scripted reviewer approves
them, and the audit (run again on its own afterwards, as `python -m bench.load.audit`) finds every student
approved and notified once, and nothing lost, duplicated or stuck; the audit also fails when it should."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest

from bench.load.stack import LOAD_VAR
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_small_load_run_completes_and_its_audit_is_clean() -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    out = LOAD_VAR / name
    try:
        result = run(
            "-m", "bench.load", "--students", "3", "--rate", "2", "--duration", "3",
            "--free-ports", "--no-results", "--name", name, "--operators", "1",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "| lost | 0 |" in result.stdout and "| duplicated | 0 |" in result.stdout
        assert "completed journeys: **3 / 3**" in result.stdout

        recorded = json.loads((out / "run.json").read_text())
        journeys = recorded["phases"][0]["journeys"]
        assert [j["outcome"] for j in journeys] == ["done"] * 3
        assert all(j["inputs"] == ["code", "confirm", "pay", "photo", "submit"] for j in journeys)
        assert sorted(recorded["decided"]) == sorted(j["application_id"] for j in journeys)
        times = json.loads((out / "stored_times.json").read_text())
        for j in journeys:  # every stage has the server's timestamps, in order
            t = times[j["openid"]]
            assert (
                t["uploaded"]
                <= t["standardized"]
                <= t["submitted"]
                <= t["matched"]
                <= t["decided"]
                <= t["notified"]
            )
        messages = json.loads((out / "sandbox.json").read_text())["messages"]["messages"]
        reviews = [m for m in messages if m["template_id"] == "demo_review_result"]
        assert sorted(m["touser"] for m in reviews) == sorted(j["openid"] for j in journeys)

        # The audit on its own, after the stack is gone (it starts the run's database again).
        again = run("-m", "bench.load.audit", name, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "| students | 3 |" in again.stdout and "| stuck | 0 |" in again.stdout

        # A second review message for one student, a decision the audit does not know of: both found.
        snapshot = json.loads((out / "sandbox.json").read_text())
        snapshot["messages"]["messages"].append(reviews[0])
        (out / "sandbox.json").write_text(json.dumps(snapshot, ensure_ascii=False))
        recorded["decided"].pop(journeys[1]["application_id"])
        (out / "run.json").write_text(json.dumps(recorded, ensure_ascii=False))
        tampered = run("-m", "bench.load.audit", name, timeout=120)
        assert tampered.returncode == 1, tampered.stdout
        assert "| duplicated | 1 |" in tampered.stdout
        assert "| in the wrong state | 1 |" in tampered.stdout
        assert "approved, expected in_review" in tampered.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)
