"""An nx-27017 server of a test's own, which the test may stop and start again (a database outage)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from pymongo import MongoClient

from tests.conftest import free_port


class NxServer:
    """The real MongoDB-wire stand-in on a free port; data kept across `stop()` / `start()`."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self, timeout: float = 30.0) -> None:
        exe = Path(sys.executable).with_name("nx-27017")
        self._proc = await asyncio.create_subprocess_exec(
            str(exe),
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--log-file",
            str(self.data_dir / "server.log"),
            "--pid-file",
            str(self.data_dir / "server.pid"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(self._answers):
            if self._proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"nx-27017 did not start; see {self.data_dir / 'server.log'}")
            await asyncio.sleep(0.1)

    def _answers(self) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(self.url, serverSelectionTimeoutMS=300)
        try:
            client.admin.command("ping")
        except Exception:
            return False
        finally:
            client.close()
        return True

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL): every connection to it drops."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
