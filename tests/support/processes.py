"""Services as real processes, for tests that kill or signal them."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from tests.conftest import ROOT


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.module = module
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    async def start(self) -> ServiceProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                self.lines.append({"event": raw.decode(errors="replace").rstrip(), "raw": True})
            self._new_line.set()

    async def wait_for_log(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if line.get("event") == event:
                        return line
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"{self.module} exited: {self.lines[-20:]}")
                self._new_line.clear()
                await self._new_line.wait()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
