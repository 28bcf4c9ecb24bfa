"""What `make run` does before starting the system (`make -n -B`: every step listed, nothing run).

The system needs no Node.js: the mini-program has no runtime npm dependency (WeChat DevTools opens
miniprogram/ as it is), and npm's packages (jest, eslint, miniprogram-simulate) are the tests' tools.
`make run` used to `npm ci` them first, so a machine that could not reach the npm registry could not run
the system at all.
"""

from __future__ import annotations

import subprocess

from tests.conftest import ROOT


def dry_run(target: str) -> str:
    done = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_make_run_installs_no_node_tools() -> None:
    steps = dry_run("run")
    assert "deploy/local/system-deps.sh run" in steps
    assert "deploy/local/run.py" in steps
    assert "npm" not in steps, steps


def test_make_test_still_installs_them() -> None:
    assert "npm ci" in dry_run("pytest")
