"""`make client-e2e`: start the stack, run the mini-program's journeys through the Node `wx`, print the
summary JSON as the last line. `--journeys N` runs N journeys (the five variants first, then happy ones)."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.client.stack import SCENARIOS, ClientStack, Student, say

MINIPROGRAM = Path(__file__).resolve().parents[2] / "miniprogram"


def plan(journeys: int, run_tag: str) -> list[Student]:
    scenarios = [*SCENARIOS, *["happy"] * max(0, journeys - len(SCENARIOS))][:journeys]
    return [Student(i, scenario, run_tag) for i, scenario in enumerate(scenarios)]


async def run(journeys: int, details: Path | None) -> int:
    stack = ClientStack()
    students = plan(journeys, stack.run_tag)
    try:
        await stack.start(students)
        config = stack.journey_config(students, details)
        config_path = stack.home / "journeys.json"
        config_path.write_text(json.dumps(config, ensure_ascii=False))
        done = await asyncio.to_thread(
            subprocess.run,
            ["node", str(MINIPROGRAM / "e2e" / "run.js"), str(config_path)],
            capture_output=True,
            text=True,
            timeout=60 * journeys + 300,
        )
        sys.stderr.write(done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0:
            say(f"journeys failed; service logs in {stack.home}")
        print(
            lines[-1] if lines else json.dumps({"journeys": 0, "passed": 0, "final_states": [], "steps": []})
        )
        return done.returncode
    finally:
        await stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.client")
    parser.add_argument("--journeys", type=int, default=len(SCENARIOS))
    parser.add_argument("--details", type=Path, help="write every journey's steps and calls here (JSON)")
    args = parser.parse_args()
    return asyncio.run(run(args.journeys, args.details or Path(tempfile.mkdtemp()) / "journeys.json"))


if __name__ == "__main__":
    sys.exit(main())
