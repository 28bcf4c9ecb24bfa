"""What the benchmarks that start servers of their own share: a free local port, waiting for one to answer,
a throw-away RabbitMQ vhost."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, timeout: float = 60.0) -> None:
    """Until `url` answers 200, or RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout:g} s")
            await asyncio.sleep(0.2)


def add_vhost(name: str) -> str:
    """A RabbitMQ vhost of the benchmark's own on the local node, open to guest; returns its name."""
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return name
