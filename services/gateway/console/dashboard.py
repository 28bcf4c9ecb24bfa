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
from collections import deque
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


class DeadQueue(BaseModel):
    queue: str
    consumer: str
    messages: int


class DeadLettersView(BaseModel):
    count: int
    by_queue: list[DeadQueue] = []


class QueueSeries(BaseModel):
    """One queue over the last hour, on the history's time grid (None: no sample at that time)."""

    name: str
    depth: list[int | None]
    publish: list[float | None]
    deliver: list[float | None]
    ack: list[float | None]


class QueueHistory(BaseModel):
    """RabbitMQ's own samples (`lengths_age`/`msg_rates_age`), one point per `step_s`; rates per second."""

    step_s: int
    timestamps: list[int]
    queues: list[QueueSeries]


class Throughput(BaseModel):
    """Work done per minute: photos standardised (imaging's acks), comparisons made (matching's acks),
    review decisions taken (audit log, the operator's schools)."""

    timestamps: list[int]
    standardised: list[float | None]
    compared: list[float | None]
    decided: list[int]


class OutboxHistory(BaseModel):
    """The backlog as this gateway process sampled it (each time the figures were computed)."""

    timestamps: list[int]
    pending_events: list[int]


class DashboardView(BaseModel):
    generated_at: datetime
    queues: QueuesView
    outbox: OutboxView
    funnel: list[FunnelCount]
    notify_failures: list[NotifyFailure]
    dead_letters: DeadLettersView
    history: QueueHistory | None
    throughput: Throughput
    outbox_history: OutboxHistory


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


HISTORY_AGE_S = 3600
HISTORY_STEP_S = 60
HISTORY_PARAMS = {
    "lengths_age": str(HISTORY_AGE_S),
    "lengths_incr": str(HISTORY_STEP_S),
    "msg_rates_age": str(HISTORY_AGE_S),
    "msg_rates_incr": str(HISTORY_STEP_S),
    # Only what the dashboard reads: the listing with samples is several times larger otherwise.
    "columns": "name,messages,messages_ready,messages_unacknowledged,consumers,messages_details,message_stats",
}


async def _fetch_rows(
    http: aiohttp.ClientSession, target: ManagementTarget, timeout_s: float, params: dict[str, str] | None
) -> list[Any]:
    try:
        async with http.get(
            target.url,
            params=params,
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
    return rows


def _figures_and_depth(rows: list[Any]) -> tuple[list[QueueFigures], dict[str, int]]:
    figures = [f for f in (queue_figures(row) for row in rows) if f is not None]
    figures.sort(key=lambda f: f.name)
    depth = {
        row["name"]: int(_number(row.get("messages")))
        for row in rows
        if isinstance(row, dict) and isinstance(row.get("name"), str)
    }
    return figures, depth


async def fetch_queues(
    http: aiohttp.ClientSession, target: ManagementTarget, timeout_s: float
) -> tuple[list[QueueFigures], dict[str, int]]:
    """The vhost's queues (figures, sorted by name) and each queue's total depth (ready + unacked)."""
    return _figures_and_depth(await _fetch_rows(http, target, timeout_s, None))


def _samples(details: Any) -> dict[int, float]:
    """A `*_details` object's samples as {epoch second: value}; anything malformed is left out."""
    samples = details.get("samples") if isinstance(details, dict) else None
    out: dict[int, float] = {}
    for item in samples if isinstance(samples, list) else ():
        if not isinstance(item, dict):
            continue
        at, value = item.get("timestamp"), item.get("sample")
        if isinstance(at, bool) or isinstance(value, bool) or not isinstance(at, int):
            continue
        if isinstance(value, int | float):
            out[at // 1000] = float(value)
    return out


def _grid(rows: list[Any], step_s: int, age_s: int) -> list[int]:
    """The common time grid: the latest sample time of any series, back `age_s` in steps of `step_s`."""
    latest = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        series = [row.get("messages_details")]
        stats = row.get("message_stats")
        if isinstance(stats, dict):
            series += [stats.get(k) for k in ("publish_details", "deliver_get_details", "ack_details")]
        for details in series:
            if found := _samples(details):
                latest = max(latest, max(found))
    if latest == 0:
        return []
    latest -= latest % step_s
    return [latest - step_s * k for k in range(age_s // step_s, -1, -1)]


def _rates(counts: dict[int, float], grid: list[int], step_s: int) -> list[float | None]:
    """Per-second rates from cumulative counters; None where a sample is missing or the counter reset."""
    out: list[float | None] = []
    for at in grid:
        now, before = counts.get(at), counts.get(at - step_s)
        out.append(
            None if now is None or before is None or now < before else round((now - before) / step_s, 3)
        )
    return out


def queue_history(rows: list[Any], step_s: int = HISTORY_STEP_S, age_s: int = HISTORY_AGE_S) -> QueueHistory:
    """Each queue's depth and publish/deliver/ack rates on one grid, from the management API's samples."""
    grid = _grid(rows, step_s, age_s)
    queues: list[QueueSeries] = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            continue
        depth = _samples(row.get("messages_details"))
        raw_stats = row.get("message_stats")
        stats: dict[str, Any] = raw_stats if isinstance(raw_stats, dict) else {}

        def rates(
            key: str, stats: dict[str, Any] = stats, depth: dict[int, float] = depth
        ) -> list[float | None]:
            counts = _samples(stats.get(key))
            if not counts:  # the broker lists a counter only once it moved: none yet is 0 where the queue was
                return [0.0 if at in depth else None for at in grid]
            return _rates(counts, grid, step_s)

        queues.append(
            QueueSeries(
                name=row["name"][:255],
                depth=[int(depth[at]) if at in depth else None for at in grid],
                publish=rates("publish_details"),
                deliver=rates("deliver_get_details"),
                ack=rates("ack_details"),
            )
        )
    queues.sort(key=lambda q: q.name)
    return QueueHistory(step_s=step_s, timestamps=grid, queues=queues)


async def fetch_queues_with_history(
    http: aiohttp.ClientSession, target: ManagementTarget, timeout_s: float
) -> tuple[list[QueueFigures], dict[str, int], QueueHistory]:
    """Today's figures and each queue's last hour: two listings at once. The current figures come from
    the plain listing: asked with the history parameters, the broker answers them from its latest
    sample, which lags (a queue seconds old reads empty)."""
    rows, history_rows = await asyncio.gather(
        _fetch_rows(http, target, timeout_s, None), _fetch_rows(http, target, timeout_s, HISTORY_PARAMS)
    )
    figures, depth = _figures_and_depth(rows)
    return figures, depth, queue_history(history_rows)


async def dead_letter_count_over_amqp(settings: GatewaySettings) -> dict[str, int]:
    """Parked messages per dead queue, counted with passive declares, when the management API cannot say."""
    connection = await aio_pika.connect(settings.amqp_url, timeout=settings.rabbitmq_management_timeout_s)
    try:
        channel = await connection.channel()
        counts: dict[str, int] = {}
        for consumer in CONSUMERS:
            queue = await channel.declare_queue(dead_queue(consumer), passive=True)
            counts[dead_queue(consumer)] = queue.declaration_result.message_count or 0
        return counts
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
    dead_by_queue: list[DeadQueue] = field(default_factory=list)
    history: QueueHistory | None = None


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
    # (school, minute start in epoch seconds) -> review decisions taken
    decisions: dict[tuple[str, int], int] = field(default_factory=dict)


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


async def decisions_per_minute(database: Database, since: datetime) -> dict[tuple[str, int], int]:
    """Review decisions per school and minute since `since`, from the audit log (indexed on action, at)."""
    counts: dict[tuple[str, int], int] = {}
    query = {"action": "review.decided", "outcome": "ok", "at": {"$gte": since}}
    async for doc in database.db["audit_log"].find(query, {"at": 1, "target.school_code": 1, "_id": 0}):
        at = _when(doc.get("at"))
        if at is None:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        raw_target = doc.get("target")
        target: dict[str, Any] = raw_target if isinstance(raw_target, dict) else {}
        key = (str(target.get("school_code") or "unknown"), int(at.timestamp()) // 60 * 60)
        counts[key] = counts.get(key, 0) + 1
    return counts


def minute_grid(now: datetime, age_s: int = HISTORY_AGE_S) -> list[int]:
    latest = int(now.timestamp()) // 60 * 60
    return [latest - 60 * k for k in range(age_s // 60, -1, -1)]


def _per_minute(history: QueueHistory | None, queue: str, grid: list[int]) -> list[float | None]:
    """A queue's ack rate (per second, on the broker's grid) as acks per minute on `grid`."""
    if history is None:
        return [None] * len(grid)
    series = next((q for q in history.queues if q.name == queue), None)
    if series is None:
        return [None] * len(grid)
    by_time = dict(zip(history.timestamps, series.ack, strict=True))
    out: list[float | None] = []
    for at in grid:
        rate = by_time.get(at)
        out.append(None if rate is None else round(rate * 60, 1))
    return out


def dead_by_queue(depth: dict[str, int]) -> list[DeadQueue]:
    return [
        DeadQueue(queue=dead_queue(consumer), consumer=consumer, messages=depth.get(dead_queue(consumer), 0))
        for consumer in sorted(CONSUMERS)
    ]


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
        # (epoch second, pending events): one sample per computation, the last hour (per process).
        self.outbox_samples: deque[tuple[int, int]] = deque(maxlen=4096)

    async def _broker(self) -> BrokerFigures:
        assert self.http is not None
        try:
            figures, depth, history = await fetch_queues_with_history(
                self.http, self.target, self.settings.rabbitmq_management_timeout_s
            )
        except ManagementUnavailable as exc:
            log.warning("queue figures unavailable", error=str(exc))
            queues = QueuesView(available=False, error=str(exc), items=[])
            try:
                counted = await dead_letter_count_over_amqp(self.settings)
            except Exception as amqp_exc:
                log.warning("dead letters not counted", error=repr(amqp_exc)[:200])
                counted = {}
            by_queue = dead_by_queue(counted) if counted else []
            return BrokerFigures(queues, sum(counted.values()), by_queue)
        by_queue = [
            DeadQueue(
                queue=dead_queue(consumer), consumer=consumer, messages=depth.get(dead_queue(consumer), 0)
            )
            for consumer in sorted(CONSUMERS)
        ]
        dead = sum(q.messages for q in by_queue)
        return BrokerFigures(QueuesView(available=True, error=None, items=figures), dead, by_queue, history)

    async def _store(self) -> StoreFigures:
        backlog, funnel, failures, decisions = await asyncio.gather(
            pending(self.database, self.collections),
            count_by_school_and_state(self.database),
            notify_failures(self.database, self.settings.console_dashboard_notify_window_h),
            decisions_per_minute(self.database, utcnow() - timedelta(seconds=HISTORY_AGE_S + 60)),
        )
        now_s = int(time.time())
        self.outbox_samples.append((now_s, backlog.events))
        while self.outbox_samples and self.outbox_samples[0][0] < now_s - HISTORY_AGE_S:
            self.outbox_samples.popleft()
        outbox = OutboxView(
            pending_events=backlog.events,
            aggregates_pending=backlog.aggregates,
            oldest_age_s=round(backlog.oldest_age_s, 3) if backlog.oldest_age_s is not None else None,
        )
        return StoreFigures(outbox, funnel, failures, decisions)

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
        now = utcnow()
        grid = minute_grid(now)
        decided = [0] * len(grid)
        index = {at: i for i, at in enumerate(grid)}
        for (school, minute), n in store.decisions.items():
            if who.sees(school) and minute in index:
                decided[index[minute]] += n
        samples = list(self.outbox_samples)
        return DashboardView(
            generated_at=now,
            queues=broker.queues,
            outbox=store.outbox,
            funnel=funnel,
            notify_failures=failures,
            dead_letters=DeadLettersView(count=broker.dead_letters, by_queue=broker.dead_by_queue),
            history=broker.history,
            throughput=Throughput(
                timestamps=grid,
                standardised=_per_minute(broker.history, "imaging", grid),
                compared=_per_minute(broker.history, "matching", grid),
                decided=decided,
            ),
            outbox_history=OutboxHistory(
                timestamps=[at for at, _ in samples], pending_events=[n for _, n in samples]
            ),
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
