"""Where the time of the two slow stages goes: cProfile of the work the imaging and matching workers do per
message (quality check + standardisation of a student's photo; comparison of the standardised photo with
the admission photo), on the photos `make load` sends, in this process, one call at a time.

The load run's own figures (stored `ms` of each photo and comparison against the stage latencies) say how
much of a stage is work and how much is waiting; this says what the work is.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from deploy.local.faces import admission_photo, student_photo

CALLS = 8
TOP = 8


def _profile(work: Callable[[], Any]) -> tuple[float, list[tuple[str, float, float, int]]]:
    """Mean wall ms per call, and the functions with the most own time (name, own ms/call, cum ms/call, calls)."""
    work()  # warm: models loaded, caches filled
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(CALLS):
        work()
    profiler.disable()
    wall_ms = (time.perf_counter() - started) * 1000 / CALLS
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        label = f"{name} ({where}:{line})" if line else name
        rows.append((label, own * 1000 / CALLS, cumulative * 1000 / CALLS, int(calls) // CALLS))
    rows.sort(key=lambda r: r[1], reverse=True)
    return wall_ms, rows[:TOP]


def _table(title: str, wall_ms: float, rows: list[tuple[str, float, float, int]]) -> list[str]:
    lines = [
        f"**{title}**: {wall_ms:.0f} ms per message on one core (mean of {CALLS}, after a warm-up call)",
        "",
        "| function (own time first) | own ms | cumulative ms | calls |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{label}` | {own:.1f} | {cum:.1f} | {calls} |" for label, own, cum, calls in rows]
    return [*lines, ""]


def profile_stages() -> str:
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import default_pool
    from services.matching.compare import FaceRules, compare_photos, read_photo
    from services.matching.config import MatchingSettings
    from services.matching.engines import engine_for

    photo, admission = student_photo(11), admission_photo()
    standard = PhotoStandard()
    with default_pool().borrow() as models:
        report = check_photo(photo, models, standard=standard, source="camera")
        assert report.ok and report.jpeg is not None, report.error or "the load photo fails the checks"
        standardised = report.jpeg
        eyes = report.geometry["eyes_px"] if report.geometry else None
        imaging = _profile(lambda: check_photo(photo, models, standard=standard, source="camera"))
    settings = MatchingSettings()
    engine = engine_for(settings)
    rules = FaceRules.from_settings(settings)
    # As the worker does it now (issue 16.1): the admission photo's reading is stored (read once, here
    # before profiling), the standardised photo's face found from the eyes imaging carried with it.
    with engine.lock:
        stored = read_photo(engine, admission, rules)
    carried = (tuple(eyes[0]), tuple(eyes[1])) if eyes else None
    matching = _profile(
        lambda: compare_photos(
            engine, standardised, None, pass_mark=80.0, rules=rules, photo_eyes=carried, admission=stored
        )
    )
    # CPU per comparison, the way before issue 16 (both photos decoded, detected, aligned, embedded by dlib's
    # own descriptor, as the baseline's worker did) and now, interleaved so that the machine's load falls on
    # both alike (process CPU time, not wall).
    old_engine = engine_for(settings.model_copy(update={"matching_dlib_descriptor": "dlib"}))
    old_cpu, new_cpu = [], []
    for _ in range(CALLS):
        started = time.process_time()
        compare_photos(old_engine, standardised, admission, pass_mark=80.0, rules=rules)
        old_cpu.append(time.process_time() - started)
        started = time.process_time()
        compare_photos(
            engine, standardised, None, pass_mark=80.0, rules=rules, photo_eyes=carried, admission=stored
        )
        new_cpu.append(time.process_time() - started)
    old_ms, new_ms = statistics.median(old_cpu) * 1000, statistics.median(new_cpu) * 1000
    before = compare_photos(old_engine, standardised, admission, pass_mark=80.0, rules=rules)
    after = compare_photos(
        engine, standardised, None, pass_mark=80.0, rules=rules, photo_eyes=carried, admission=stored
    )
    ratio = (
        f"Matching CPU per comparison (median of {CALLS}, interleaved): before issue 16 {old_ms:.0f} ms, "
        f"now {new_ms:.0f} ms: **{new_ms / old_ms:.2f}×** (target ≤ 0.4×); score {before.score} before, "
        f"{after.score} now (the photo's face found from imaging's eyes: {after.photo.located})."
    )
    return "\n".join(
        [
            "Profile of the per-message work (cProfile, `python -m bench.load --profile`):",
            "",
            ratio,
            "",
            *_table("imaging: quality check + standardisation", *imaging),
            *_table(
                "matching: standardised photo (eyes carried) vs the stored admission descriptor (dlib)",
                *matching,
            ),
        ]
    )


if __name__ == "__main__":
    print(profile_stages())
