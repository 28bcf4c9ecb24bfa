"""Debian's chromium driven by playwright: never a downloaded browser (`playwright install` is not used)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from PIL import Image
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat before a browser starts)
        raise RuntimeError("Debian's chromium is missing: apt-get install -y chromium (.ci/run does this)")
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (480, 640)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG", quality=85)
    return out.getvalue()


def screenshot_dir(name: str) -> Path:
    """Where a browser test saves its screenshot: docs/<name>/ when UPDATE_SCREENSHOTS=1 (to refresh the
    pictures the docs show), else a scratch folder, so a test run never dirties the work tree."""
    import os
    import tempfile

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / name
    else:
        target = Path(tempfile.mkdtemp(prefix=f"screenshots-{name}-"))
    target.mkdir(parents=True, exist_ok=True)
    return target
