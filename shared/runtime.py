"""The process runtime every service shares: start-up, HTTP probes and metrics, graceful shutdown.

`/healthz` answers while the process is alive; `/readyz` only while the database answers and the
bus is connected (and, for a consumer, consuming); `/metrics` is Prometheus text. With `OPS_PORT` set,
`/readyz` and `/metrics` (and `/healthz`) are served on that port only, by a server of their own, and
the HTTP port keeps just `/healthz`: the port an ingress exposes then tells the world nothing about the
process. SIGTERM stops consumption, lets in-flight messages finish (up to `DRAIN_TIMEOUT_S`), then
closes everything; a SIGTERM during the start-up retries (database or broker still away) ends the
process at once, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.blobs import BlobStore
from shared.bus import Bus, Subscription
from shared.config import Settings
from shared.db import Database, IndexSpec
from shared.idempotency import ProcessedEvents
from shared.logging import configure_logging, get_logger

log = get_logger(__name__)

READY = Gauge("service_ready", "1 while the service reports ready", ["service"])


class StartupAborted(SystemExit):
    """A stop was requested while start-up was still retrying: nothing was started, nothing to drain.

    A SystemExit with code 0, so the process ends cleanly out of `async with runtime:` and
    `asyncio.run` (a supervisor such as `make run` or Kubernetes sees a deliberate stop, not a crash).
    """

    def __init__(self) -> None:
        super().__init__(0)


class Runtime:
    """Owns the database, blob store, bus and HTTP server of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        indexes: Sequence[IndexSpec] = (),
        app: web.Application | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.database = Database(settings)
        self.blobs = BlobStore(self.database)
        self.bus = Bus(settings, ProcessedEvents(self.database, lease_s=settings.bus_claim_lease_s))
        self.app = app or web.Application()
        self._indexes = indexes
        self._startup_timeout_s = startup_timeout_s
        self._consumer = False
        self._runner: web.AppRunner | None = None
        self._ops_runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._shutting_down = False
        self.app.router.add_get("/healthz", self._healthz)
        # The probes and metrics: on the HTTP port, or on a port of their own (OPS_PORT).
        self.ops_app = web.Application() if settings.ops_port is not None else self.app
        if self.ops_app is not self.app:
            self.ops_app.router.add_get("/healthz", self._healthz)
        self.ops_app.router.add_get("/readyz", self._readyz)
        self.ops_app.router.add_get("/metrics", self._metrics)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def start(self) -> None:
        """Connect to the database and the broker, retrying for up to `startup_timeout_s`, then listen.

        Raises StartupAborted (after closing what was opened) if a stop is requested meanwhile.
        """
        connecting = asyncio.create_task(self._connect())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            log.info("stop requested during start-up; exiting")
            with contextlib.suppress(Exception):
                await self.bus.close()
            await self.database.close()
            raise StartupAborted
        connecting.result()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("http listening", host=self.settings.http_host, port=self.http_port)
        if self.ops_app is not self.app:
            self._ops_runner = web.AppRunner(self.ops_app, access_log=None, handle_signals=False)
            await self._ops_runner.setup()
            await web.TCPSite(self._ops_runner, self.settings.http_host, self.settings.ops_port).start()
            log.info("probes and metrics listening", host=self.settings.http_host, port=self.ops_port)

    async def _connect(self) -> None:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(self._startup_timeout_s),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type(Exception),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.info("retrying start-up", attempt=attempt.retry_state.attempt_number)
                await self.database.ensure_indexes(*self._indexes)
                if not self.bus.connected:
                    await self.bus.connect()

    @property
    def http_port(self) -> int:
        """The port actually bound (differs from the setting when that is 0, as in tests)."""
        assert self._runner is not None, "runtime not started"
        address = self._runner.addresses[0]
        return int(address[1])

    @property
    def ops_port(self) -> int:
        """The port serving /readyz and /metrics: OPS_PORT as bound, or the HTTP port."""
        if self._ops_runner is None:
            return self.http_port
        return int(self._ops_runner.addresses[0][1])

    async def consume(self, subscription: Subscription) -> None:
        self._consumer = True
        await self.bus.consume(subscription)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

    async def wait_for_stop(self) -> None:
        await self._stopping.wait()
        log.info("stop requested, draining")

    def request_stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        READY.labels(self.settings.service_name).set(0)
        if self._consumer:
            drained = await self.bus.drain(self.settings.drain_timeout_s)
            log.info("drained", complete=drained)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._ops_runner is not None:
            await self._ops_runner.cleanup()
        with contextlib.suppress(Exception):
            await self.bus.close()
        await self.database.close()
        log.info("stopped")

    async def ready(self) -> dict[str, bool]:
        checks = {
            "database": await self.database.ping(),
            "broker": self.bus.connected,
        }
        if self._consumer:
            checks["consuming"] = self.bus.consuming
        return checks

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": self.settings.service_name})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self.ready()
        ok = all(checks.values()) and not self._shutting_down
        READY.labels(self.settings.service_name).set(1 if ok else 0)
        return web.json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_logging(settings: Settings) -> None:
    configure_logging(service=settings.service_name, level=settings.log_level, json_logs=settings.json_logs)
