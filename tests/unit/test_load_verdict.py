"""`make load`'s verdict against issue 9's target reads the knee's step when a knee was searched."""

from __future__ import annotations

from typing import Any

from bench.load.report import verdict_text

PER_STUDENT = {"mongo": 0.11, "gateway": 0.09, "imaging": 0.08, "matching": 0.03}


def figures(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "photos_per_s": 1.2,  # the steady phase's rate
        "latency": {"upload→standardised": {95: 0.15}, "submit→matched": {95: 0.1}},
        "knee": None,
        "knee_steps": [],
    }
    return {**base, **overrides}


def step(
    rate: float, photos: float, flat: bool = True, std: float = 0.3, match: float = 0.2
) -> dict[str, Any]:
    return {"rate": rate, "flat": flat, "photos_per_s": photos, "p95_std": std, "p95_match": match}


def test_without_a_knee_search_the_steady_rate_is_judged() -> None:
    text = verdict_text(figures(), PER_STUDENT)
    assert "not met on this machine." in text and "at the knee" not in text


def test_the_knee_step_is_judged_when_one_was_searched() -> None:
    steps = [step(3.0, 2.97), step(3.5, 3.47), step(4.0, 3.6, flat=False, std=1.84, match=1.47)]
    text = verdict_text(figures(knee=3.5, knee_steps=steps), PER_STUDENT)
    assert "): met on this machine (at the knee: 3.47 photos/s, p95 0.30 s and 0.20 s)" in text


def test_a_knee_below_three_photos_or_slow_at_the_knee_is_not_met() -> None:
    low = verdict_text(figures(knee=2.0, knee_steps=[step(2.0, 2.0)]), PER_STUDENT)
    assert "not met on this machine (at the knee: 2.00 photos/s" in low
    slow = verdict_text(figures(knee=3.5, knee_steps=[step(3.5, 3.5, match=1.6)]), PER_STUDENT)
    assert "not met on this machine (at the knee: 3.50 photos/s, p95 0.30 s and 1.60 s)" in slow
