"""Hostile inputs at the HTTP edge (issue 13, item 6), against a real gateway over HTTP: numeric query
parameters that are not finite or out of range, a long poll whose client has gone, JSON bodies without a
Content-Length, and JSON nested deeper than Python's parser can go. Each test is named after the defect
and failed on the code before the fix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from services.gateway.console.operators import Role
from services.gateway.http.middleware import REQUESTS
from tests.support.console import operator
from tests.support.system import running_system

STATUS_ROUTE = "/api/v1/codes/{scan_id}"


def _finished_polls() -> float:
    return float(REQUESTS.labels("GET", STATUS_ROUTE, "200")._value.get())


async def test_wait_nan_on_the_code_status_long_poll_is_400_not_a_poll_that_never_ends(env):
    async with running_system(env, with_codec=False) as system:  # no codec: the scan stays pending
        student = await system.student("o-wait-nan")
        status, scan = await student.submit_text("https://a.b/c")
        assert status == 202, scan
        path = f"/api/v1/codes/{scan['scan_id']}"
        for wait, error in (
            ("nan", "not_a_number"),
            ("NaN", "not_a_number"),
            ("inf", "not_a_number"),
            ("-inf", "not_a_number"),
            ("1e999", "not_a_number"),
            ("abc", "not_a_number"),
            ("-1", "out_of_range"),
            ("25.5", "out_of_range"),
            ("100000", "out_of_range"),
        ):
            # Before: `nan` made the deadline NaN, so the poll never answered (the client timeout fired).
            status, body = await student.request(
                "GET", f"{path}?wait={wait}", timeout=aiohttp.ClientTimeout(total=10)
            )
            assert status == 400, (wait, body)
            assert body["code"] == "invalid_request"
            assert body["details"]["fields"] == [{"field": "wait", "error": error}], wait
        # Repeated: every copy is checked, not only the first.
        status, body = await student.request("GET", f"{path}?wait=1&wait=nan")
        assert status == 400 and body["details"]["fields"][0]["field"] == "wait"
        # In range it still long-polls and answers the pending scan.
        status, body = await student.request("GET", f"{path}?wait=0.3")
        assert status == 200 and body["status"] == "pending"
        # Nothing was changed by the refused requests.
        application = await system.gateway.database.db["applications"].find_one(
            {"code.scan_id": scan["scan_id"]}
        )
        assert application is not None and application["code"]["status"] == "pending"


async def test_long_poll_keeps_reading_the_database_after_the_client_left(env):
    async with running_system(env, with_codec=False) as system:
        student = await system.student("o-poll-gone")
        status, scan = await student.submit_text("https://a.b/c")
        assert status == 202, scan
        finished = _finished_polls()
        # The client gives up after half a second of a 25 s poll and closes its connection.
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(
                    f"{system.base_url}/api/v1/codes/{scan['scan_id']}?wait=25",
                    headers=student.headers,
                    timeout=aiohttp.ClientTimeout(total=0.5),
                ) as resp:
                    await resp.read()
                raise AssertionError("the pending scan's poll answered before its client left")
            except TimeoutError:
                pass
        # The handler notices within a poll interval (0.2 s); before, it went on for the whole 25 s.
        deadline = asyncio.get_running_loop().time() + 10
        while _finished_polls() == finished:
            assert asyncio.get_running_loop().time() < deadline, (
                "the poll still runs 10 s after its client left"
            )
            await asyncio.sleep(0.1)


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _post(url: str, data: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, str | None]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}) as resp,
    ):
        return (
            resp.status,
            await resp.json(content_type=None),
            resp.request_info.headers.get("Content-Length"),
        )


async def test_chunked_json_body_without_content_length_bypasses_the_64_kib_limit(env):
    async with running_system(env, with_codec=False) as system:
        big = b'{"email": "a@example.com", "password": "' + b"x" * (100 * 1024) + b'"}'
        for path in ("/console/api/v1/login", "/api/v1/login"):
            # Chunked (an async generator body): no Content-Length, so only a bounded read can refuse it.
            status, body, length = await _post(f"{system.base_url}{path}", _chunks(big))
            assert length is None
            assert status == 413 and body["code"] == "payload_too_large", (path, body)
            # With a Content-Length it is refused before reading, as before.
            status, body, length = await _post(f"{system.base_url}{path}", big)
            assert length == str(len(big))
            assert status == 413 and body["code"] == "payload_too_large", (path, body)
        # A chunked body within the limit is read whole and handled as usual (a wrong password here).
        small = b'{"email": "nobody@example.com", "password": "not this one"}'
        status, body, _ = await _post(f"{system.base_url}/console/api/v1/login", _chunks(small, 7))
        assert status == 401 and body["code"] == "invalid_credentials", body
        assert await system.gateway.database.db["console_sessions"].count_documents({}) == 0


async def test_deeply_nested_json_is_a_500_with_a_traceback(env):
    async with running_system(env, with_codec=False) as system:
        student = await system.student("o-nested-json")
        admin = await operator(system, "nested@example.com", Role.ADMIN, [])
        sessions_before = await system.gateway.database.db["console_sessions"].count_documents({})
        bodies = [
            b"[" * 50_000,  # RecursionError in json.loads: was a 500 with a traceback
            b'{"email": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",  # the same inside an object, under 64 KiB
            b'{"email": "\xff\xfe"}',  # not UTF-8
            b'{"email": "a@example.com", "password": ',  # cut short
            b"",
        ]
        for data in bodies:
            # Unauthenticated: the console's and the students' sign-in.
            for path in ("/console/api/v1/login", "/api/v1/login"):
                status, body, _ = await _post(f"{system.base_url}{path}", data)
                assert status == 400 and body["code"] == "invalid_json", (path, data[:20], body)
                assert body["request_id"] and "Traceback" not in str(body)
            # Signed in: a student route and a console route.
            status, body = await student.request(
                "POST", "/api/v1/application/confirm", data=data, headers={"Content-Type": "application/json"}
            )
            assert status in (400, 409), body
            if status == 400:
                assert body["code"] == "invalid_json", body
            status, body = await admin.request(
                "PUT",
                "/console/api/v1/schools/10487",
                data=data,
                headers={"Content-Type": "application/json"},
            )
            assert status == 400 and body["code"] == "invalid_json", (data[:20], body)
        assert await system.gateway.database.db["console_sessions"].count_documents({}) == sessions_before
        school = await system.gateway.database.db["schools"].find_one({"_id": "10487"})
        assert school is not None


async def test_console_numeric_query_parameters_accept_nan_and_out_of_range(env):
    async with running_system(env, with_codec=False) as system:
        admin = await operator(system, "query@example.com", Role.ADMIN, [])
        for query, error in (
            ("limit=nan", "not_an_integer"),
            ("limit=1e999", "not_an_integer"),
            ("limit=0", "out_of_range"),
            ("limit=501", "out_of_range"),
            ("limit=-5", "out_of_range"),
            ("limit=2.5", "not_an_integer"),
        ):
            status, body = await admin.request("GET", f"/console/api/v1/audit?{query}")
            assert status == 400 and body["details"]["fields"] == [{"field": "limit", "error": error}], (
                query,
                body,
            )
            status, body = await admin.request("GET", f"/console/api/v1/deadletters/codec?{query}")
            assert status == 400 and body["code"] == "invalid_request", (query, body)
        status, body = await admin.request("GET", "/console/api/v1/audit?limit=500")
        assert status == 200 and isinstance(body["entries"], list)
        # The refused searches were not run, so not audited; the accepted one was.
        searches = await system.gateway.database.db["audit_log"].count_documents({"action": "audit.search"})
        assert searches == 1
