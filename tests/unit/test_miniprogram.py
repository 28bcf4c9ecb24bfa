"""The mini-program's own checks inside `make test`: eslint and jest (with miniprogram-simulate) under Node.

The Node dependencies come from miniprogram/package-lock.json (`npm ci`, the Makefile's node stamp); when
they are missing, this installs them the same way, so a plain pytest run works too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MINIPROGRAM = Path(__file__).resolve().parents[2] / "miniprogram"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed for the mini-program's tests: apt-get install -y nodejs npm")
    modules = MINIPROGRAM / "node_modules"
    if not (modules / ".installed").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=MINIPROGRAM, check=True
        )
        (modules / ".installed").touch()
    return modules


def test_eslint(node_modules: Path) -> None:
    done = subprocess.run(
        [str(node_modules / ".bin" / "eslint"), "--max-warnings=0", "."],
        cwd=MINIPROGRAM,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_jest(node_modules: Path, tmp_path: Path) -> None:
    report = tmp_path / "jest.json"
    done = subprocess.run(
        [str(node_modules / ".bin" / "jest"), "--ci", "--json", f"--outputFile={report}"],
        cwd=MINIPROGRAM,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    result = json.loads(report.read_text())
    assert result["numFailedTests"] == 0
    # Every page has its test, and nothing was skipped.
    assert result["numPassedTests"] >= 50 and result["numPendingTests"] == 0
    titles = " ".join(t["fullName"] for suite in result["testResults"] for t in suite["assertionResults"])
    pages = ["home", "notice", "register", "confirm", "pay", "guide", "camera", "result", "submit", "status"]
    assert [p for p in pages if p not in titles] == []


def test_every_page_is_declared_and_complete() -> None:
    """What WeChat DevTools needs to open the folder as it is."""
    app = json.loads((MINIPROGRAM / "app.json").read_text())
    for page in app["pages"]:
        for ext in ("js", "json", "wxml", "wxss"):
            assert (MINIPROGRAM / f"{page}.{ext}").exists(), f"{page}.{ext}"
    project = json.loads((MINIPROGRAM / "project.config.json").read_text())
    assert project["compileType"] == "miniprogram"
    ignored = {entry["value"] for entry in project["packOptions"]["ignore"]}
    assert {"node_modules", "tests", "e2e"} <= ignored
    for name in ("app.js", "app.wxss", "sitemap.json", "config.js", "package-lock.json"):
        assert (MINIPROGRAM / name).exists(), name
