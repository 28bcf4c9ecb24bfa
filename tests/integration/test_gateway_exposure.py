"""What the gateway exposes (issue 13, item 10): `/metrics` and `/readyz` on their own port, never on the
port the ingress exposes; a production gateway that would serve them there, or that has no data key,
refuses to start instead of running on a public development key. Real servers and processes."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp

from tests.support.system import running_system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def test_metrics_and_readyz_are_served_on_the_public_port(env):
    async with running_system(env, with_codec=False, ops_port=0) as system, aiohttp.ClientSession() as http:
        public = system.base_url
        ops = f"http://127.0.0.1:{system.gateway.ops_port}"
        assert system.gateway.ops_port != system.gateway.http_port
        for path in ("/metrics", "/readyz"):
            async with http.get(f"{public}{path}") as resp:  # before: 200 with every metric and check
                body = await resp.json()
                assert resp.status == 404 and body["code"] == "not_found", path
        async with http.get(f"{ops}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["checks"] == {
                "database": True,
                "broker": True,
                "consuming": True,
            }
        async with http.get(f"{ops}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and "http_requests_total" in text
        # Liveness answers on both: the image's HEALTHCHECK probes the public port.
        for base in (public, ops):
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["service"] == "gateway"
        # The API itself is only on the public port.
        async with http.get(f"{ops}/api/v1/schools/10487") as resp:
            assert resp.status == 404
        async with http.get(f"{public}/api/v1/schools/10487") as resp:
            assert resp.status == 200


async def _start(extra: dict[str, str], drop: tuple[str, ...]) -> tuple[int, str]:
    """Run the gateway's entry point as a process; it must stop on its own (configuration error)."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"PYTHONPATH": ROOT, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", **extra})
    # Nothing listens here: a gateway that got past its configuration would retry for 60 s, not exit.
    env["MONGO_URL"] = "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=200"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.gateway",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the gateway started instead of refusing its configuration") from None
    return proc.returncode or 0, out.decode(errors="replace")


async def test_without_a_data_key_the_gateway_runs_on_the_public_development_key():
    keys = ("ENVIRONMENT", "GATEWAY_DATA_KEY", "GATEWAY_DATA_KEYS", "OPS_PORT")
    # ENVIRONMENT not set (its default is development): before, a warning and the public key.
    code, out = await _start({}, keys)
    assert code != 0 and "GATEWAY_DATA_KEYS (or GATEWAY_DATA_KEY) is required" in out, out
    code, out = await _start({"ENVIRONMENT": "production", "OPS_PORT": "0"}, keys)
    assert code != 0 and "is required" in out, out


async def test_a_production_gateway_serves_metrics_on_its_public_port():
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, base64
    code, out = await _start(
        {"ENVIRONMENT": "production", "GATEWAY_DATA_KEY": key}, ("OPS_PORT", "GATEWAY_DATA_KEYS")
    )
    assert code != 0 and "OPS_PORT is required in production" in out, out
