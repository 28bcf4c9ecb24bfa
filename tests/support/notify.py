"""The notify worker in the test's event loop against the WeChat sandbox, and applications to message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from sandbox.wechat import SandboxServer
from services.notify.config import DEMO_TEMPLATES, NotifySettings
from services.notify.handlers import INDEXES, NotifyHandlers
from services.notify.render import value_type
from shared.runtime import Runtime
from shared.wechat.miniprogram import WeChatClient
from tests.support.system import settings_from
from tests.support.wechat import client_settings, shared_keyset

T = TypeVar("T")
OPENID = "oStudent_notify_000000000001"


@dataclass
class NotifyWorker:
    runtime: Runtime
    client: WeChatClient
    settings: NotifySettings


def strict_templates(sandbox: SandboxServer) -> None:
    """Make the sandbox refuse any data key the demo templates do not declare (as WeChat does)."""
    templates: dict[str, list[str]] = {}
    for spec in DEMO_TEMPLATES["10487"].values():
        assert all(value_type(key) for key in spec.fields)
        templates[spec.template_id] = sorted(spec.fields)
    sandbox.state.knobs.subscribe_templates = templates


@asynccontextmanager
async def notify_worker(
    env: dict[str, str], sandbox: SandboxServer, **overrides: Any
) -> AsyncIterator[NotifyWorker]:
    settings = settings_from(env, NotifySettings, service_name="notify", **overrides)
    runtime = Runtime(settings, indexes=[INDEXES])
    await runtime.start()
    try:
        async with aiohttp.ClientSession() as http:
            client = WeChatClient(client_settings(shared_keyset(), sandbox.url), http)
            await runtime.consume(NotifyHandlers(runtime.database, settings, client).subscription())
            yield NotifyWorker(runtime, client, settings)
    finally:
        await runtime.shutdown()


def application(
    owner_openid: str | None = OPENID, school_code: str = "10487", **fields: Any
) -> dict[str, Any]:
    """An application as the gateway writes it, with just what notify reads."""
    return {
        "_id": str(uuid.uuid4()),
        "state": "paid",
        "owner_openid": owner_openid,
        "school_code": school_code,
        "student_id": f"{school_code}:2110216052",
        "verified_code": {"masked_name": "赵**", "school_name": "示范大学", "school_code": school_code},
        "order": {"out_trade_no": "GP20261128000001", "amount_fen": 3000, "status": "paid"},
        **fields,
    }


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if (result := await check()) is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
