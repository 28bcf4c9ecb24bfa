"""`python -m tests.client.screenshots`: every page of the mini-program as a PNG under docs/miniprogram/.

miniprogram/tools/preview.js renders each page's real WXML with its real logic (miniprogram-simulate) and
the real WXSS into HTML; Debian's chromium (playwright, tests/support/browser.py) takes the screenshots at
a 375 px wide phone, 2x. The pictures in them are real: a portrait from deploy/local/faces.py for the
camera, that portrait standardised by the imaging pipeline, and the roster's admission photo.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.local.faces import admission_photo, student_photo
from tests.support.browser import chromium

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "miniprogram"


def images(work: Path) -> dict[str, str]:
    portrait = work / "portrait.jpg"
    portrait.write_bytes(student_photo(3))
    standardised = work / "standardised.jpg"
    subprocess.run(
        [sys.executable, "-m", "services.imaging.cli", "standardize", str(portrait), str(standardised)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    admission = work / "admission.jpg"
    admission.write_bytes(admission_photo())
    return {"portrait": str(portrait), "standardised": str(standardised), "admission": str(admission)}


async def shoot(pages: list[Path], out: Path) -> list[Path]:
    shots = []
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
        for html in pages:
            await page.goto(html.as_uri())
            target = out / f"{html.stem}.png"
            await page.screenshot(path=str(target), full_page=True)
            shots.append(target)
    return shots


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "images.json").write_text(json.dumps(images(work)))
        subprocess.run(
            ["node", "tools/preview.js", str(work / "html")],
            check=True,
            cwd=ROOT / "miniprogram",
            env={"IMAGES": str(work / "images.json"), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )
        OUT.mkdir(parents=True, exist_ok=True)
        shots = asyncio.run(shoot(sorted((work / "html").glob("*.html")), OUT))
    print(json.dumps({"screenshots": [str(p.relative_to(ROOT)) for p in shots]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
