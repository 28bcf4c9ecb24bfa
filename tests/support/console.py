"""An operator's browser for the console API: cookies kept by hand (the test server is plain-HTTP 127.0.0.1,
where a cookie jar would drop Secure cookies), the CSRF header sent on every state-changing request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

from services.gateway.console.operators import Operators, Role
from services.gateway.store import Applications
from shared.events import new_id, utcnow

PASSWORD = "correct horse battery staple"


@dataclass
class OperatorClient:
    base_url: str
    http: aiohttp.ClientSession
    cookies: dict[str, str] = field(default_factory=dict)
    operator_id: str = ""

    @property
    def csrf(self) -> str:
        return self.cookies.get("console_csrf", "")

    async def request(
        self, method: str, path: str, *, csrf: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method not in ("GET", "HEAD"):
            token = self.csrf if csrf is None else csrf
            if token:
                headers["X-CSRF-Token"] = token
        async with self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs) as resp:
            for header in resp.headers.getall("Set-Cookie", []):
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value:
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.read()

    async def login(self, email: str, password: str = PASSWORD) -> tuple[int, Any]:
        status, body = await self.request(
            "POST", "/console/api/v1/login", json={"email": email, "password": password}
        )
        if status == 200:
            self.operator_id = body["operator"]["operator_id"]
        return status, body


async def operator(system: Any, email: str, role: Role, schools: list[str]) -> OperatorClient:
    """An operator created through the store, signed in over HTTP."""
    await Operators(system.gateway.database).create(email, PASSWORD, role, schools)
    client = OperatorClient(system.base_url, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
    system.students.append(client)  # closed with the system's sessions
    status, body = await client.login(email)
    assert status == 200, body
    return client


async def in_review_case(
    system: Any, school_code: str = "10487", number: str = "2110216052", **extra: Any
) -> str:
    """An application waiting for review, written straight to the store (the journey test covers getting there)."""
    application_id = new_id()
    photo_id = new_id()
    blob_id = await system.gateway.blobs.put(
        b"\xff\xd8\xff-standardised", filename="std", content_type="image/jpeg"
    )
    document = {
        "_id": application_id,
        "state": "in_review",
        "school_code": school_code,
        "student_id": f"{school_code}:{number}",
        "owner_openid": f"o-{application_id}",
        "photos": {
            photo_id: {
                "status": "standardized",
                "raw_blob_id": blob_id,
                "standardized_blob_id": blob_id,
                "uploaded_at": utcnow(),
                "measures": [{"code": "single_face", "raw": 1.0, "score": 100.0, "passed": True}],
            }
        },
        "submission": {"submission_id": new_id(), "photo_id": photo_id, "submitted_at": utcnow(), "count": 1},
        "match": {"score": 91.5, "passed": True, "photo_id": photo_id},
        "resubmissions_left": 2,
        **extra,
    }
    await Applications(system.gateway.database, lambda: None).create(document)
    return application_id
