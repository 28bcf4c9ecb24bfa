"""The codec as a real process: probes, a SIGKILL mid-message, and a graceful SIGTERM drain."""

from __future__ import annotations

import asyncio
import io
import signal

import aiohttp
import numpy as np
import pytest
from PIL import Image

from tests.conftest import free_port
from tests.support.codes import CLAIM
from tests.support.processes import ServiceProcess
from tests.support.system import running_system

pytestmark = pytest.mark.slow


def slow_image() -> bytes:
    """Twelve megapixels of noise and no code: the whole cascade runs, which takes a while."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, size=(3000, 4000), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=60)  # about 5 MB, under the upload limit
    return out.getvalue()


def upload(image: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for key, value in {**CLAIM, "agreed": "true"}.items():
        data.add_field(key, value)
    data.add_field("image", image, filename="code.png", content_type="image/jpeg")
    return data


async def submit(student, image: bytes) -> dict:
    status, body = await student.request("POST", "/api/v1/codes", data=upload(image))
    assert status == 202, body
    return body


async def decided(student, scan_id: str, timeout: float = 60) -> dict:
    """Long-poll the scan (20 s at a time) until the codec decided it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await student.request("GET", f"/api/v1/codes/{scan_id}?wait=20")
        assert status == 200, body
        if body["status"] != "pending":
            return body
        assert asyncio.get_running_loop().time() < deadline, "scan still pending"


async def test_worker_killed_mid_message_is_taken_over_within_seconds_and_recorded_once(env, subprocess_env):
    """16.4: with the default settings (no short lease for the test), a scan whose worker was killed is
    decided by the next worker within seconds, not after a 60 s claim lease: the codec is idempotent by
    construction and takes no claim, so the broker's redelivery is handled at once."""
    worker_env = {**subprocess_env, "HTTP_PORT": str(free_port())}
    async with running_system(env, with_codec=False) as system:
        first = await ServiceProcess("services.codec", worker_env).start()
        try:
            await first.wait_for_log("codec ready")
            student = await system.student()
            body = await submit(student, slow_image())
            await first.wait_for_log("code scan started")
            first.signal(signal.SIGKILL)  # mid-message: nothing decided, nothing acked
            assert await first.wait() == -signal.SIGKILL
            assert await system.gateway.database.db["codes"].count_documents({}) == 0

            second_env = {**worker_env, "HTTP_PORT": str(free_port())}
            second = await ServiceProcess("services.codec", second_env).start()
            try:
                await second.wait_for_log("codec ready", timeout=60)
                ready = asyncio.get_running_loop().time()
                started = await second.wait_for_log("code scan started", timeout=30)
                taken_over_s = asyncio.get_running_loop().time() - ready
                assert started["scan_id"] == body["scan_id"]
                assert taken_over_s < 10, taken_over_s
                result = await decided(student, body["scan_id"])
                assert result["status"] == "rejected" and result["reason"] == "no_code_found"
                decided_line = await second.wait_for_log("code scan decided")
                assert decided_line["scan_id"] == body["scan_id"]
            finally:
                await second.stop()
        finally:
            await first.stop()
        db = system.gateway.database.db
        assert await db["codes"].count_documents({"_id": body["scan_id"]}) == 1
        assert await db["processed_events"].count_documents({"consumer": "codec"}) == 0  # no claim taken
        assert await db["processed_events"].count_documents({"consumer": "gateway", "state": "done"}) == 1


async def test_probes_metrics_and_graceful_drain_on_sigterm(env, subprocess_env):
    port = free_port()
    async with running_system(env, with_codec=False) as system:
        worker = await ServiceProcess("services.codec", {**subprocess_env, "HTTP_PORT": str(port)}).start()
        try:
            await worker.wait_for_log("codec ready")
            base = f"http://127.0.0.1:{port}"
            async with system.http.get(f"{base}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["service"] == "codec"
            async with system.http.get(f"{base}/readyz") as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert body["checks"] == {"database": True, "broker": True, "consuming": True}

            student = await system.student()
            scan = await submit(student, slow_image())
            await worker.wait_for_log("code scan started")
            worker.signal(signal.SIGTERM)  # while the scan is in flight
            drained = await worker.wait_for_log("drained", timeout=30)
            assert drained["complete"] is True
            assert await worker.wait() == 0
            # The in-flight scan was finished and acked before the process left, not abandoned.
            result = await decided(student, scan["scan_id"], timeout=10)
            assert result["reason"] == "no_code_found"
            assert any(line.get("event") == "code scan decided" for line in worker.lines)
        finally:
            await worker.stop()


async def test_metrics_count_handled_messages(env, subprocess_env):
    port = free_port()
    async with running_system(env, with_codec=False) as system:
        worker = await ServiceProcess("services.codec", {**subprocess_env, "HTTP_PORT": str(port)}).start()
        try:
            await worker.wait_for_log("codec ready")
            student = await system.student()
            _, scan = await student.submit_text("https://a.b/c")
            await decided(student, scan["scan_id"])
            await asyncio.sleep(0.2)
            async with system.http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            assert 'bus_messages_total{consumer="codec",outcome="ok",type="code.scanned.v1"} 1.0' in text
            assert "bus_handler_seconds_bucket" in text
        finally:
            await worker.stop()
