"""Once a second: every queue's depth (the private node's management API), the outbox backlog, and the
CPU seconds each process of the stack (and the harness itself) has used (/proc, children included)."""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from bench.load.stack import WORKERS, Stack

CONSUMERS = ("gateway", *WORKERS)


@dataclass
class Sample:
    t: float
    queues: dict[str, tuple[int, int]] | None  # name -> (ready, unacked); None: the broker did not answer
    outbox_docs: int | None  # applications holding unpublished events; None: the database did not answer
    outbox_events: int | None
    cpu: dict[str, tuple[int, float]] = field(default_factory=dict)  # process -> (pid, CPU seconds so far)

    @property
    def work(self) -> int | None:
        """Messages waiting for or held by a consumer (main and retry queues, not the parked ones)."""
        if self.queues is None:
            return None
        return sum(
            r + u
            for name, (r, u) in self.queues.items()
            if name.split(".")[0] in CONSUMERS and not name.endswith(".dead")
        )

    def depth(self, consumer: str) -> int | None:
        if self.queues is None:
            return None
        return sum(r + u for name, (r, u) in self.queues.items() if name in (consumer, f"{consumer}.retry"))

    def dead(self) -> int | None:
        if self.queues is None:
            return None
        return sum(r + u for name, (r, u) in self.queues.items() if name.endswith(".dead"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "queues": self.queues,
            "outbox_docs": self.outbox_docs,
            "outbox_events": self.outbox_events,
            "cpu": self.cpu,
        }


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU of a process and (unless told not to) its live descendants; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / TICKS
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return 0.0
    return own + sum(cpu_seconds(int(child)) for child in children if descendants)


@dataclass
class Sampler:
    stack: Stack
    interval_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.stack.mongo_url, serverSelectionTimeoutMS=800, connectTimeoutMS=800, socketTimeoutMS=2000
        )
        applications = client[self.stack.db_name]["applications"]
        async with aiohttp.ClientSession(auth=aiohttp.BasicAuth("guest", "guest")) as http:
            while not stop.is_set():
                started = time.time()
                queues = await self.stack.queue_depths(http)
                docs: int | None = 0
                events: int | None = 0
                try:
                    async for doc in applications.find({"outbox_pending": {"$gt": 0}}, {"outbox_pending": 1}):
                        docs = (docs or 0) + 1
                        events = (events or 0) + int(doc.get("outbox_pending") or 0)
                except Exception:  # the database is being restarted: a gap in the series
                    docs = events = None
                cpu = {
                    name: (child.proc.pid, cpu_seconds(child.proc.pid))
                    for name, child in self.stack.children.items()
                    if child.proc is not None
                }
                # The harness alone: the stack's processes are its children, counted above.
                cpu["harness"] = (os.getpid(), cpu_seconds(os.getpid(), descendants=False))
                self.samples.append(Sample(started, queues, docs, events, cpu))
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, self.interval_s - (time.time() - started)))
        await client.close()
