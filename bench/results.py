"""bench/RESULTS.md holds one marked section per benchmark; each run replaces only its own."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench-{name}:begin -->", f"<!-- bench-{name}:end -->"


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Put `body` between the benchmark's markers, leaving every other benchmark's section as it is."""
    begin, end = markers(name)
    block = f"{begin}\n{body}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def pin_to_one_core() -> None:
    """Run the rest of this benchmark on one core (the first this process may use), so CPU time per
    message is one core's, as a single-threaded worker replica gets."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
