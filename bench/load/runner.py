"""One load run: the stack up, the roster in, students arriving at a rate, faults if asked, then the audit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load.journey import (
    REVIEW_TEMPLATE,
    SCHOOL,
    Journey,
    Kit,
    Operator,
    Person,
    Student,
    admission_photos,
)
from bench.load.sampler import Sampler
from bench.load.stack import SERVICES, WORKERS, Stack, say
from services.gateway.console.operators import Operators, Role
from services.gateway.roster import import_roster
from shared.blobs import BlobStore
from shared.config import Settings
from shared.db import Database
from shared.dbstats import parse_metrics

OPERATOR_PASSWORD = "load-run-reviewer-password"  # a throw-away database's throw-away account


@dataclass
class Fault:
    at_s: float  # seconds into the arrivals
    kind: str  # kill:<service>, restart:gateway, restart:rabbitmq, restart:mongo
    started: float = 0.0
    recovered_s: float | None = None
    error: str | None = None


def fault_plan(duration_s: float) -> list[Fault]:
    """Every fault once, spread across the arrivals (the last two thirds of them get no new faults: the
    system is seen recovering while students still arrive)."""
    kinds = [
        "kill:codec",
        "kill:imaging",
        "restart:rabbitmq",
        "kill:matching",
        "restart:mongo",
        "kill:notify",
        "restart:gateway",
    ]
    first, last = 0.08 * duration_s, 0.75 * duration_s
    step = (last - first) / (len(kinds) - 1)
    return [Fault(first + i * step, kind) for i, kind in enumerate(kinds)]


@dataclass
class Phase:
    """Students arriving at `rate` per second for `duration_s` (or until `count` have arrived)."""

    name: str
    rate: float
    duration_s: float
    count: int
    started: float = 0.0
    ended: float = 0.0
    even: bool = False
    journeys: list[Journey] = field(default_factory=list)
    # Database commands each service had sent (/metrics: shared/dbstats.py) when the phase began and
    # when its last journey ended: {service: {collection: {"read": n, "write": n}}}.
    db_before: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    db_after: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


@dataclass
class LoadRun:
    stack: Stack
    out: Path
    poll_s: float = 0.5
    long_poll: bool = True
    precompute: bool = True
    precompute_cpu_s: float = 0.0
    step_timeout_s: float = 120.0
    operators: int = 2
    seed: int = 7
    kits: list[Kit] = field(default_factory=list)
    sampler: Sampler | None = None
    operator_pool: list[Operator] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    notified_at: dict[str, float] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    _next_kit: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    # --- set-up -------------------------------------------------------------------------------

    async def prepare(self, students: int, run_tag: str) -> None:
        """The roster (with admission photos), the reviewer accounts, each student's code and photo."""
        started = time.monotonic()
        self.loadavg = os.getloadavg()  # other work on the machine when the run began
        people = [Person.make(i, run_tag) for i in range(students)]
        kits = asyncio.create_task(asyncio.to_thread(lambda: [Kit.make(p) for p in people]))
        database = Database(Settings(mongo_url=self.stack.mongo_url, mongo_db=self.stack.db_name))
        try:
            report = await import_roster(
                database,
                BlobStore(database),
                SCHOOL,
                [p.roster_row() for p in people],
                admission_photos(people),
            )
            if report.rejected:
                raise RuntimeError(f"roster rows refused: {report.rejected[:3]}")
            for n in range(self.operators):
                await Operators(database).create(
                    f"reviewer{n}@load.example", OPERATOR_PASSWORD, Role.REVIEWER, [SCHOOL]
                )
        finally:
            await database.close()
        precompute = None
        if self.precompute:
            # What ops run after a roster import (docs/operations.md): matching reads every admission
            # photo once and stores its descriptor, off the students' path.
            precompute = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "services.matching.cli", "precompute", "--school", SCHOOL),
                env={**self.stack.env, **self.stack.service_env.get("matching", {})},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        self.kits = await kits
        if precompute is not None:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            await precompute.wait()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.precompute_cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            say(f"admission descriptors stored (cli precompute, exit {precompute.returncode})")
        say(f"{students} students in the roster, codes and photos made ({time.monotonic() - started:.1f} s)")

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        self.sampler = Sampler(self.stack)
        self._spawn(self.sampler.run(self._stop))
        self._spawn(self._watch_messages())
        for n in range(self.operators):
            operator = Operator(
                self.stack.gateway_url, f"reviewer{n}@load.example", OPERATOR_PASSWORD, self._http
            )
            await operator.login()
            self.operator_pool.append(operator)
            self._spawn(operator.work(self._stop))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if self._http is not None:
            await self._http.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    # --- notifications ------------------------------------------------------------------------

    async def _watch_messages(self) -> None:
        """The review-result messages the sandbox received, by openid (their `received_at`)."""
        assert self._http is not None
        while not self._stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self._http.get(
                    f"{self.stack.sandbox_url}/sandbox/messages", timeout=aiohttp.ClientTimeout(total=10)
                ) as resp:
                    body = await resp.json()
                for message in body.get("messages", []):
                    if message.get("template_id") == REVIEW_TEMPLATE:
                        openid = str(message.get("touser"))
                        when = float(message.get("received_at") or time.time())
                        self.notified_at.setdefault(openid, when)
                        waiter = self._waiters.get(openid)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(self.notified_at[openid])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    async def notified(self, openid: str) -> float:
        if openid in self.notified_at:
            return self.notified_at[openid]
        waiter = self._waiters.setdefault(openid, asyncio.get_running_loop().create_future())
        return await waiter

    # --- arrivals -----------------------------------------------------------------------------

    async def run_phase(self, phase: Phase) -> None:
        """Students arrive at `rate`/s, Poisson (steady) or evenly spaced (`phase.even`: a knee step, where
        the rate must be the rate); returns when every one of them has finished."""
        assert self._http is not None
        rnd = random.Random(self.seed + len(phase.name))
        running: list[asyncio.Task[Journey]] = []
        phase.db_before = await self.db_commands()
        phase.started = time.time()
        clock = time.monotonic()
        next_arrival = 0.0
        while (elapsed := time.monotonic() - clock) < phase.duration_s and len(running) < phase.count:
            if self._next_kit >= len(self.kits):
                say("the roster is used up: no more arrivals in this phase")
                break
            if elapsed >= next_arrival:
                kit = self.kits[self._next_kit]
                self._next_kit += 1
                student = Student(
                    kit,
                    self.stack.gateway_url,
                    self.stack.sandbox_url,
                    self._http,
                    self.poll_s,
                    long_poll=self.long_poll,
                )
                running.append(asyncio.create_task(student.run(self.step_timeout_s, self.notified)))
                next_arrival += 1 / phase.rate if phase.even else rnd.expovariate(phase.rate)
                continue
            await asyncio.sleep(min(0.05, next_arrival - elapsed))
        phase.ended = time.time()
        say(f"phase {phase.name}: {len(running)} students arrived; waiting for their journeys")
        phase.journeys = list(await asyncio.gather(*running))
        phase.db_after = await self.db_commands()

    async def db_commands(self) -> dict[str, dict[str, dict[str, float]]]:
        """Each service's database commands so far, by collection (its /metrics); {} for one not answering."""
        assert self._http is not None
        counts: dict[str, dict[str, dict[str, float]]] = {}
        for name in SERVICES:
            url = f"http://127.0.0.1:{self.stack.ports.service(name)}/metrics"
            try:
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    counts[name] = parse_metrics(await response.text())
            except (aiohttp.ClientError, TimeoutError):
                counts[name] = {}
        return counts

    # --- faults -------------------------------------------------------------------------------

    async def inject(self, plan: list[Fault]) -> None:
        clock = time.monotonic()
        for fault in plan:
            await asyncio.sleep(max(0.0, fault.at_s - (time.monotonic() - clock)))
            fault.started = time.time()
            say(f"fault: {fault.kind}")
            try:
                action, target = fault.kind.split(":")
                if action == "kill":
                    fault.recovered_s = await self.stack.kill(target)
                elif target == "rabbitmq":
                    fault.recovered_s = await self.stack.restart_rabbit()
                elif target == "mongo":
                    fault.recovered_s = await self.stack.restart_mongo()
                else:
                    fault.recovered_s = await self.stack.restart(target)
            except (
                Exception
            ) as exc:  # recorded and reported: a fault that could not be injected fails the run
                fault.error = repr(exc)
            say(f"fault {fault.kind}: back after {fault.recovered_s or 0:.1f} s")
            self.faults.append(fault)

    # --- what the run leaves behind -----------------------------------------------------------

    async def snapshot_sandbox(self) -> dict[str, Any]:
        """The sandbox's records (it keeps them in memory only), for the audit."""
        assert self._http is not None
        snapshot: dict[str, Any] = {}
        for what in ("messages", "orders", "notifications"):
            async with self._http.get(f"{self.stack.sandbox_url}/sandbox/{what}") as resp:
                snapshot[what] = await resp.json()
        (self.out / "sandbox.json").write_text(json.dumps(snapshot, ensure_ascii=False))
        return snapshot

    def save(self, phases: list[Phase]) -> None:
        assert self.sampler is not None
        self.out.mkdir(parents=True, exist_ok=True)
        data = {
            "stack": self.stack.describe(),
            "phases": [
                {
                    "name": p.name,
                    "rate": p.rate,
                    "duration_s": p.duration_s,
                    "started": p.started,
                    "ended": p.ended,
                    "journeys": [j.summary() for j in p.journeys],
                    "db_before": p.db_before,
                    "db_after": p.db_after,
                }
                for p in phases
            ],
            "faults": [f.__dict__ for f in self.faults],
            "decided": {k: v for o in self.operator_pool for k, v in o.decided.items()},
            "operator_errors": sum(o.errors for o in self.operator_pool),
            "restarts": self.stack.restarts,
            "samples": [s.as_dict() for s in self.sampler.samples],
            "workers": list(WORKERS),
            "loadavg_at_start": self.loadavg,
            "precompute_cpu_s": self.precompute_cpu_s,
        }
        (self.out / "run.json").write_text(json.dumps(data, ensure_ascii=False, indent=1))
