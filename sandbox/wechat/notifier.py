"""Payment and refund notifications, posted to the merchant's notify_url the way WeChat Pay does.

A notification is retried on anything but a 2xx, after each delay of the retry schedule (the real
schedule starts 15 s, 15 s, 30 s, 3 min; tests shorten it). The knobs in force when it is created
decide its fate: delayed, duplicated after delivery, signed wrongly, or never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import aiohttp

from sandbox.wechat.signing import notification_body, signature_headers
from sandbox.wechat.state import Attempt, Notification, SandboxState, now_cst
from shared.logging import get_logger
from shared.wechat.crypto import load_private_key

log = get_logger(__name__)


class Notifier:
    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._platform_key = load_private_key(state.config.keyset.platform_private_key)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    async def idle(self) -> None:
        """Wait until every scheduled delivery has finished (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def send(
        self,
        *,
        url: str,
        event_type: str,
        summary: str,
        original_type: str,
        resource: dict[str, Any],
        out_trade_no: str,
        out_refund_no: str | None = None,
    ) -> Notification:
        knobs = self._state.knobs
        event_id, body = notification_body(
            event_type=event_type,
            summary=summary,
            original_type=original_type,
            resource=resource,
            apiv3_key=self._state.config.keyset.apiv3_key,
        )
        notification = Notification(
            id=event_id,
            event_type=event_type,
            url=url,
            body=body,
            resource=resource,
            tampered_signature=knobs.tampered_signature,
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
        )
        self._state.notifications[event_id] = notification
        if knobs.never_notify:
            notification.state = "suppressed"
            return notification
        self.spawn(self._deliver(notification, knobs.delay_s, list(knobs.retry_delays_s), knobs.duplicate))
        return notification

    def replay(self, notification: Notification) -> None:
        """Send the last request again byte for byte (same headers, same signature): a replay."""
        self.spawn(self._post(notification, dict(notification.last_headers), replay=True))

    def resend(self, notification: Notification) -> None:
        """Send once more with a fresh signature: what WeChat does when it missed our answer."""
        self.spawn(self._post(notification, self._headers(notification), duplicate=True))

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run `coro` in the background; `close()` cancels it and `idle()` waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, notification: Notification, delay_s: float, retry_delays: list[float], duplicate: int
    ) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        for wait in [0.0, *retry_delays]:
            if wait > 0:
                await asyncio.sleep(wait)
            if await self._post(notification, self._headers(notification)):
                notification.state = "delivered"
                break
        else:
            notification.state = "failed"
            log.info("notification_gave_up", notification_id=notification.id, attempts=len(retry_delays) + 1)
            return
        for _ in range(duplicate):
            await self._post(notification, self._headers(notification), duplicate=True)

    def _headers(self, notification: Notification) -> dict[str, str]:
        headers = signature_headers(
            notification.body,
            platform_key=self._platform_key,
            public_key_id=self._state.config.keyset.platform_public_key_id,
            tamper=notification.tampered_signature,
        )
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "Mozilla/4.0"  # what WeChat Pay's callbacks send
        notification.last_headers = headers
        return headers

    async def _post(
        self,
        notification: Notification,
        headers: dict[str, str],
        *,
        duplicate: bool = False,
        replay: bool = False,
    ) -> bool:
        assert self._session is not None, "Notifier.start() was not called"
        status: int | None = None
        error: str | None = None
        text = ""
        try:
            async with self._session.post(
                notification.url,
                data=notification.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._state.knobs.notify_timeout_s),
            ) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:500]
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        notification.attempts.append(
            Attempt(
                at=now_cst(), status=status, error=error, response=text, duplicate=duplicate, replay=replay
            )
        )
        ok = status is not None and 200 <= status < 300
        log.info(
            "notification_sent",
            notification_id=notification.id,
            event_type=notification.event_type,
            status=status,
            error=error,
            duplicate=duplicate,
            replay=replay,
        )
        return ok
