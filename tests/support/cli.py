"""Run a service's offline CLI as the operator would: a subprocess printing one JSON object per line."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT


def run_cli(module: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, the JSON lines on stdout, and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr
