"""The console dashboard: per queue depth, consumers and rates (RabbitMQ's management HTTP API), the
outbox backlog and its age, the live funnel per school and state, notify failures by WeChat error
code, and the number of parked (dead) messages.

Every figure is computed for all schools at most once per `CONSOLE_DASHBOARD_CACHE_S` per gateway
process, whoever asks, and then cut down to the asking operator's schools: many operators refreshing
every few seconds cost one management API call and one scan of each collection per period. Nothing
here is personal data (counts per school and state, queue names, error codes), so views are not audited.
If the management API cannot be reached the queues say why and everything else still answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import aiohttp
from aiohttp import web
from pydantic import BaseModel
from yarl import URL

from services.gateway.config import GatewaySettings
from services.gateway.console.auth import SIGNED_IN
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator
from services.gateway.context import DATABASE, RELAY
from services.gateway.funnel import count_by_school_and_state
from services.gateway.http.errors import json_response
from services.gateway.http.registry import Api
from shared.db import Database
from shared.events import utcnow
from shared.logging import get_logger
from shared.notifications import NOT_DELIVERED
from shared.outbox import pending
from shared.topology import CONSUMERS, dead_queue

log = get_logger(__name__)
api = Api()

MANAGEMENT_PORT = 15672
# A queue listing of a few dozen queues is a few tens of KiB; anything far larger is not that.
MAX_MANAGEMENT_BYTES = 4 * 1024 * 1024
# Notifications that did not reach the student (sent and sending are not failures: shared/notifications.py).
FAILED_STATES = tuple(sorted(str(s) for s in NOT_DELIVERED))


# --- the answer (docs/console.md, "Dashboards") ------------------------------------------------------


class QueueFigures(BaseModel):
    name: str
    messages_ready: int
    messages_unacked: int
    consumers: int
    publish_rate: float
    deliver_rate: float
    ack_rate: float


class QueuesView(BaseModel):
    available: bool
    error: str | None
    items: list[QueueFigures]


class OutboxView(BaseModel):
    pending_events: int
    aggregates_pending: int
    oldest_age_s: float | None


class FunnelCount(BaseModel):
    school_code: str
    state: str
    count: int


class NotifyFailure(BaseModel):
    code: str
    count: int
    last_at: datetime | None


class DeadLettersView(BaseModel):
    count: int


class DashboardView(BaseModel):
    generated_at: datetime
    queues: QueuesView
    outbox: OutboxView
    funnel: list[FunnelCount]
    notify_failures: list[NotifyFailure]
    dead_letters: DeadLettersView


# --- RabbitMQ's management API -----------------------------------------------------------------------


@dataclass(frozen=True)
class ManagementTarget:
    """Where the queue listing of the gateway's own vhost is, and with which credentials."""

    url: URL
    login: str
    password: str

    @property
    def display(self) -> str:
        """For error messages: the host and port only, never the credentials."""
        return f"{self.url.host}:{self.url.port}"


def vhost_of(amqp_url: str) -> str:
    """The vhost of an AMQP URL: its path, percent-decoded; none or "/" is the default vhost "/"."""
    path = urlsplit(amqp_url).path
    return "/" if path in ("", "/") else unquote(path[1:])


def management_target(settings: GatewaySettings) -> ManagementTarget:
    amqp = urlsplit(settings.amqp_url)
    login = unquote(amqp.username) if amqp.username is not None else "guest"
    password = unquote(amqp.password) if amqp.password is not None else "guest"
    if settings.rabbitmq_management_url:
        base = urlsplit(settings.rabbitmq_management_url)
        if base.username is not None:
            login, password = unquote(base.username), unquote(base.password or "")
        host, port = base.hostname or "127.0.0.1", base.port
        scheme, prefix = base.scheme or "http", base.path.rstrip("/")
    else:
        host, port, scheme, prefix = amqp.hostname or "127.0.0.1", MANAGEMENT_PORT, "http", ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    vhost = quote(vhost_of(settings.amqp_url), safe="")
    return ManagementTarget(
        URL(f"{scheme}://{netloc}{prefix}/api/queues/{vhost}", encoded=True), login, password
    )


class ManagementUnavailable(Exception):
    """Why the queue figures could not be had; the text is shown to operators (no credentials in it)."""


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _rate(stats: Any, key: str) -> float:
    details = stats.get(key) if isinstance(stats, dict) else None
    return round(_number(details.get("rate")) if isinstance(details, dict) else 0.0, 3)


def queue_figures(row: Any) -> QueueFigures | None:
    """One queue of the listing; None for an entry that is not a queue (a broken or hostile answer)."""
    if not isinstance(row, dict) or not isinstance(row.get("name"), str):
        return None
    stats = row.get("message_stats")
    return QueueFigures(
        name=row["name"][:255],
        messages_ready=int(_number(row.get("messages_ready"))),
        messages_unacked=int(_number(row.get("messages_unacknowledged"))),
        consumers=int(_number(row.get("consumers"))),
        publish_rate=_rate(stats, "publish_details"),
        # deliver_get: deliveries to consumers and basic.get, acknowledged or not.
        deliver_rate=_rate(stats, "deliver_get_details"),
        ack_rate=_rate(stats, "ack_details"),
    )


async def _capped_body(resp: aiohttp.ClientResponse) -> bytes:
    """The body, read no further than one byte past MAX_MANAGEMENT_BYTES."""
    body = bytearray()
    while len(body) <= MAX_MANAGEMENT_BYTES and (chunk := await resp.content.read(64 * 1024)):
        body += chunk
    return bytes(body)


async def fetch_queues(
    http: aiohttp.ClientSession, target: ManagementTarget, timeout_s: float
) -> tuple[list[QueueFigures], dict[str, int]]:
    """The vhost's queues (figures, sorted by name) and each queue's total depth (ready + unacked)."""
    try:
        async with http.get(
            target.url,
            headers={"Authorization": aiohttp.encode_basic_auth(target.login, target.password)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as resp:
            if resp.status != 200:
                raise ManagementUnavailable(f"management API at {target.display} answered HTTP {resp.status}")
            body = await _capped_body(resp)
    except TimeoutError as exc:
        raise ManagementUnavailable(
            f"management API at {target.display}: no answer in {timeout_s:g} s"
        ) from exc
    except aiohttp.ClientError as exc:
        raise ManagementUnavailable(
            f"management API at {target.display} unreachable ({type(exc).__name__})"
        ) from exc
    if len(body) > MAX_MANAGEMENT_BYTES:
        raise ManagementUnavailable(f"management API at {target.display}: answer too large")
    try:
        rows = json.loads(body)
    except ValueError as exc:
        raise ManagementUnavailable(f"management API at {target.display}: answer is not JSON") from exc
    if not isinstance(rows, list):
        raise ManagementUnavailable(f"management API at {target.display}: answer is not a queue list")
    figures = [f for f in (queue_figures(row) for row in rows) if f is not None]
    figures.sort(key=lambda f: f.name)
    depth = {
        row["name"]: int(_number(row.get("messages")))
        for row in rows
        if isinstance(row, dict) and isinstance(row.get("name"), str)
    }
    return figures, depth


async def dead_letter_count_over_amqp(settings: GatewaySettings) -> int:
    """Parked messages counted with passive declares, when the management API cannot say."""
    connection = await aio_pika.connect(settings.amqp_url, timeout=settings.rabbitmq_management_timeout_s)
    try:
        channel = await connection.channel()
        total = 0
        for consumer in CONSUMERS:
            queue = await channel.declare_queue(dead_queue(consumer), passive=True)
            total += queue.declaration_result.message_count or 0
        return total
    finally:
        await connection.close()


# --- the cached, all-schools snapshot ----------------------------------------------------------------

T = TypeVar("T")


class Cached(Generic[T]):
    """A value recomputed at most once per `ttl_s`, and never more than a third of the time: a computation
    that took d seconds is kept for at least 2d (a large installation's scans stretch the period instead
    of running back to back). Concurrent askers wait for the one computation. `ttl_s` 0: no cache."""

    def __init__(self, ttl_s: float, compute: Callable[[], Awaitable[T]]) -> None:
        self._ttl = ttl_s
        self._compute = compute
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._expires = 0.0

    async def get(self) -> T:
        if self._ttl <= 0:
            return await self._compute()
        if self._value is not None and time.monotonic() < self._expires:
            return self._value
        async with self._lock:
            if self._value is None or time.monotonic() >= self._expires:
                started = time.monotonic()
                self._value = await self._compute()
                finished = time.monotonic()
                self._expires = finished + max(self._ttl, 2 * (finished - started))
            return self._value


@dataclass(frozen=True)
class BrokerFigures:
    queues: QueuesView
    dead_letters: int


@dataclass(frozen=True)
class FailureGroup:
    count: int = 0
    last_at: datetime | None = None


@dataclass(frozen=True)
class StoreFigures:
    outbox: OutboxView
    funnel: dict[tuple[str, str], int]
    # (school, code) -> count and latest time
    failures: dict[tuple[str, str], FailureGroup] = field(default_factory=dict)


def failure_code(doc: dict[str, Any]) -> str:
    """WeChat's errcode where it answered one; otherwise why nothing was sent (no_account_bound, ...)."""
    errcode = doc.get("errcode")
    if isinstance(errcode, int) and not isinstance(errcode, bool) and errcode != 0:
        return str(errcode)
    return str(doc.get("reason") or doc.get("state") or "unknown")[:64]


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):  # written through a dotted path somewhere: nx-27017 hands back text
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


async def notify_failures(database: Database, window_h: float) -> dict[tuple[str, str], FailureGroup]:
    query: dict[str, Any] = {"state": {"$in": list(FAILED_STATES)}}
    since = utcnow() - timedelta(hours=window_h) if window_h > 0 else None
    groups: dict[tuple[str, str], FailureGroup] = {}
    projection = {"school_code": 1, "errcode": 1, "reason": 1, "state": 1, "updated_at": 1, "_id": 0}
    async for doc in database.db["notifications"].find(query, projection):
        at = _when(doc.get("updated_at"))
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        # The window is applied here, not in the query: the field's type is not guaranteed (see _when).
        if since is not None and (at is None or at < since):
            continue
        key = (str(doc.get("school_code") or "unknown"), failure_code(doc))
        group = groups.get(key, FailureGroup())
        last = group.last_at if at is None or (group.last_at and group.last_at >= at) else at
        groups[key] = FailureGroup(group.count + 1, last)
    return groups


class Dashboard:
    """Per gateway process: the cached figures and the HTTP client of the management API."""

    def __init__(self, settings: GatewaySettings, database: Database, collections: tuple[str, ...]) -> None:
        self.settings = settings
        self.database = database
        self.collections = collections
        self.target = management_target(settings)
        self.http: aiohttp.ClientSession | None = None
        self.broker = Cached(settings.console_dashboard_cache_s, self._broker)
        self.store = Cached(settings.console_dashboard_cache_s, self._store)

    async def _broker(self) -> BrokerFigures:
        assert self.http is not None
        try:
            figures, depth = await fetch_queues(
                self.http, self.target, self.settings.rabbitmq_management_timeout_s
            )
        except ManagementUnavailable as exc:
            log.warning("queue figures unavailable", error=str(exc))
            queues = QueuesView(available=False, error=str(exc), items=[])
            try:
                dead = await dead_letter_count_over_amqp(self.settings)
            except Exception as amqp_exc:
                log.warning("dead letters not counted", error=repr(amqp_exc)[:200])
                dead = 0
            return BrokerFigures(queues, dead)
        dead = sum(depth.get(dead_queue(consumer), 0) for consumer in CONSUMERS)
        return BrokerFigures(QueuesView(available=True, error=None, items=figures), dead)

    async def _store(self) -> StoreFigures:
        backlog, funnel, failures = await asyncio.gather(
            pending(self.database, self.collections),
            count_by_school_and_state(self.database),
            notify_failures(self.database, self.settings.console_dashboard_notify_window_h),
        )
        outbox = OutboxView(
            pending_events=backlog.events,
            aggregates_pending=backlog.aggregates,
            oldest_age_s=round(backlog.oldest_age_s, 3) if backlog.oldest_age_s is not None else None,
        )
        return StoreFigures(outbox, funnel, failures)

    async def view(self, who: Operator) -> DashboardView:
        broker, store = await asyncio.gather(self.broker.get(), self.store.get())
        funnel = [
            FunnelCount(school_code=school, state=state, count=n)
            for (school, state), n in sorted(store.funnel.items())
            if who.sees(school)
        ]
        by_code: dict[str, FailureGroup] = {}
        for (school, code), group in store.failures.items():
            if not who.sees(school):
                continue
            seen = by_code.get(code, FailureGroup())
            candidates = [t for t in (seen.last_at, group.last_at) if t is not None]
            by_code[code] = FailureGroup(seen.count + group.count, max(candidates, default=None))
        failures = [
            NotifyFailure(code=code, count=g.count, last_at=g.last_at)
            for code, g in sorted(by_code.items(), key=lambda kv: (-kv[1].count, kv[0]))
        ]
        return DashboardView(
            generated_at=utcnow(),
            queues=broker.queues,
            outbox=store.outbox,
            funnel=funnel,
            notify_failures=failures,
            dead_letters=DeadLettersView(count=broker.dead_letters),
        )


DASHBOARD = web.AppKey("console_dashboard", Dashboard)


def install(app: web.Application, settings: GatewaySettings) -> None:
    """Called by wiring.install_console: the dashboard's state and its HTTP client's lifetime."""

    async def client(app: web.Application) -> AsyncIterator[None]:
        dashboard = app[DASHBOARD]
        async with aiohttp.ClientSession() as http:
            dashboard.http = http
            yield
            dashboard.http = None

    app[DASHBOARD] = Dashboard(settings, app[DATABASE], app[RELAY].collections)
    app.cleanup_ctx.append(client)


@api.route(
    "GET",
    f"{PREFIX}/dashboard",
    summary="Queues, outbox backlog, the funnel and notify failures of the operator's schools, dead letters",
    response=DashboardView,
    auth=SIGNED_IN,
)
async def dashboard(request: web.Request, *, who: Operator) -> web.Response:
    view = await request.app[DASHBOARD].view(who)
    return json_response(view.model_dump(mode="json"))
