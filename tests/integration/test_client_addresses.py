"""Client addresses behind the ingress (issue 13, item 8), against a real gateway over HTTP.

Every request here comes from 127.0.0.1, as every request does behind an ingress; with
`GATEWAY_TRUSTED_PROXIES=127.0.0.1/32` the test plays the ingress and names the client in
X-Forwarded-For, as ingress-nginx does. Each test is named after the defect and failed before the fix.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.gateway.console.operators import Role
from tests.support.console import PASSWORD, OperatorClient, operator
from tests.support.system import running_system

ADMIN = "admin@example.com"


async def _login(system: Any, http: aiohttp.ClientSession, email: str, password: str, client: str) -> int:
    async with http.post(
        f"{system.base_url}/console/api/v1/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client},
    ) as resp:
        body = await resp.json()
        assert resp.status in (200, 401, 429), body
        return resp.status


async def test_anonymous_failed_logins_lock_every_operator_out(env):
    async with (
        running_system(env, with_codec=False, gateway_trusted_proxies="127.0.0.1/32") as system,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        await operator(system, ADMIN, Role.ADMIN, [])
        await operator(system, "reviewer@example.com", Role.REVIEWER, ["10487"])
        # An anonymous caller hammers the admin's account and made-up ones from its own address.
        outcomes = [await _login(system, http, ADMIN, "guess", "203.0.113.9") for _ in range(12)]
        outcomes += [
            await _login(system, http, f"x{n}@example.com", "guess", "203.0.113.9") for n in range(20)
        ]
        assert outcomes[:5] == [401] * 5 and 429 in outcomes  # its own guessing is throttled
        assert await _login(system, http, ADMIN, PASSWORD, "203.0.113.9") == 429  # even with the password
        # Before: keyed on the TCP peer (the ingress, shared by everyone), so every operator was locked out.
        assert await _login(system, http, ADMIN, PASSWORD, "198.51.100.7") == 200
        assert await _login(system, http, "reviewer@example.com", PASSWORD, "198.51.100.8") == 200

        # Many addresses guessing one account lock it, but only for addresses that have failed on it: each new
        # address gets one guess, and the operator's own address still signs in.
        for n in range(24):
            await _login(system, http, ADMIN, "guess", f"192.0.2.{n + 1}")
        assert await _login(system, http, ADMIN, "guess", "192.0.2.200") == 401  # a fresh address: one guess
        assert await _login(system, http, ADMIN, PASSWORD, "192.0.2.200") == 429  # then it is locked there
        assert await _login(system, http, ADMIN, PASSWORD, "198.51.100.7") == 200

        audit = system.gateway.database.db["audit_log"]
        ok = [d async for d in audit.find({"action": "login", "outcome": "ok", "email": ADMIN})]
        # The audit log records the client's address, not the ingress's.
        assert "198.51.100.7" in {d["ip"] for d in ok} and {d["ip"] for d in ok} <= {
            "127.0.0.1",
            "198.51.100.7",
        }
        throttled = [d async for d in audit.find({"action": "login", "outcome": "throttled"})]
        assert throttled and {d["ip"] for d in throttled} <= {"203.0.113.9", "192.0.2.200"}


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(env):
    async with (
        running_system(env, with_codec=False) as system,  # no trusted proxies: the peer is the client
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        await operator(system, ADMIN, Role.ADMIN, [])
        # Inventing a new X-Forwarded-For per request gets no fresh bucket.
        outcomes = [await _login(system, http, ADMIN, "guess", f"10.9.{n}.1") for n in range(8)]
        assert outcomes[:5] == [401] * 5 and outcomes[5:] == [429] * 3
        audit = system.gateway.database.db["audit_log"]
        ips = {d["ip"] async for d in audit.find({"action": "login", "outcome": {"$ne": "ok"}})}
        assert ips == {"127.0.0.1"}


async def test_student_login_limiter_trusts_the_first_forwarded_for_entry(env):
    async with running_system(env, with_codec=False, gateway_trusted_proxies="127.0.0.1/32") as system:
        student = await system.student("o-xff", login=False)

        async def login(forwarded_for: str) -> tuple[int, Any]:
            return await student.request(
                "POST", "/api/v1/login", json={"code": "made-up"}, headers={"X-Forwarded-For": forwarded_for}
            )

        # The client invents the leftmost entry per request; the ingress appends the address it saw.
        answers = [await login(f"10.0.{n}.{n}, 198.51.100.20") for n in range(14)]
        statuses = [status for status, _ in answers]
        # Before: keyed on the first (invented) entry, so no request was ever limited.
        assert statuses[:10] == [400] * 10 and 429 in statuses[10:], statuses
        assert all(body["code"] == "invalid_login_code" for status, body in answers if status == 400)
        assert all(body["code"] == "rate_limited" for status, body in answers if status == 429)
        # Another client behind the same ingress is not affected.
        status, body = await login("198.51.100.21")
        assert status == 400 and body["code"] == "invalid_login_code"
        # No session was created by any of it.
        assert await system.gateway.database.db["sessions"].count_documents({}) == 0


async def test_without_forwarded_for_the_peer_is_the_client(env):
    """Without a proxy in front (a local run), the TCP peer is the client: sign-in works as before."""
    async with running_system(env, with_codec=False, gateway_trusted_proxies="127.0.0.1/32") as system:
        admin = await operator(system, ADMIN, Role.ADMIN, [])
        status, me = await admin.request("GET", "/console/api/v1/me")
        assert status == 200 and me["email"] == ADMIN
        fresh = OperatorClient(system.base_url, admin.http)
        assert (await fresh.login(ADMIN, "wrong"))[0] == 401
