"""Where the slowest stage's time goes: cProfile of the imaging and matching handlers' work, in process."""

from __future__ import annotations


def profile_stages() -> str:
    return ""
