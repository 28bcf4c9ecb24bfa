"""The admission-photo reuse check on its labelled set: precision, recall, and what it costs.

``python -m bench.matching.reuse`` builds tests/support/reuse_sets.py's full set (ten admission photos
of different people, each re-submitted nine ways and placed on the canvas by imaging; every other
person against each; eight demo student photos from deploy/local/faces.py), compares every pair with
the dlib engine exactly as the worker does (services/matching/compare.py) and reports:

- per label, how many end `reused` (refused), `similar` (flagged for the reviewer) or nothing;
- precision and recall of the refusal, and of refusal-or-flag, with `reused` as the positive class;
- the CPU time of the check (face prints of both photos + the decision) beside the comparison's own,
  in the same run (process CPU time; the machine is shared).

Results go to bench/RESULTS.md between the ``bench-matching-reuse`` markers.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from bench.results import write_section
from services.matching.compare import FaceRules, PhotoReading, compare_photos, read_photo
from services.matching.config import MatchingSettings
from services.matching.engines import engine_for
from services.matching.reuse import (
    REUSE_MAX_BALANCE,
    REUSE_MAX_GAIN,
    REUSE_MAX_HAMMING,
    REUSE_MAX_STRUCTURE,
    SIMILAR_MIN_SCORE,
    face_print,
    judge,
)
from tests.support.reuse_sets import labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md")
    args = parser.parse_args()
    engine = engine_for(MatchingSettings(matching_engine="dlib"))
    rules = FaceRules()
    admissions: dict[bytes, PhotoReading] = {}
    counts: Counter[tuple[str, str]] = Counter()
    odd: list[str] = []
    compare_cpu = check_cpu = 0.0
    checks = 0
    for case in labelled():
        if case.admission not in admissions:
            with engine.lock:
                admissions[case.admission] = read_photo(engine, case.admission, rules)
        admission = admissions[case.admission]
        started = time.process_time()
        result = compare_photos(
            engine,
            case.photo,
            None,
            pass_mark=80.0,
            rules=rules,
            photo_eyes=case.eyes,
            admission=admission,
            check_reuse=True,
        )
        compare_cpu += time.process_time() - started
        verdict = result.reuse.verdict if result.reuse is not None else "no descriptors"
        counts[(case.label, str(verdict))] += 1
        if (case.label == "reused") != (verdict == "reused"):
            evidence = result.reuse.as_dict() if result.reuse is not None else {}
            odd.append(f"| {case.label} | {case.name} | {verdict} | {evidence} |")
        # The check alone, again: both face prints (the admission's is stored in production) + decision.
        if result.photo.face_print is not None and admission.face_print is not None:
            chip = engine.align(*_located(engine, case.photo, case.eyes, rules))
            started = time.process_time()
            judge(face_print(chip), admission.face_print, result.reuse.score if result.reuse else None)
            check_cpu += time.process_time() - started
            checks += 1
    body = report(counts, odd, compare_cpu, check_cpu, checks)
    print(body)
    if not args.no_write:
        write_section("matching-reuse", body)


def _located(engine, data, eyes, rules):  # type: ignore[no-untyped-def]
    from services.matching.compare import locate, locate_carried

    reading = PhotoReading()
    if eyes is not None:
        return locate_carried(engine, data, eyes, rules, reading)
    return locate(engine, data, rules, reading)


def report(
    counts: Counter[tuple[str, str]], odd: list[str], compare_cpu: float, check_cpu: float, checks: int
) -> str:
    labels = ("reused", "different", "demo")
    verdicts = ("reused", "similar", "None")
    rows = [
        f"| {label} | {sum(counts[(label, v)] for v in verdicts)} | "
        + " | ".join(str(counts[(label, v)]) for v in verdicts)
        + " |"
        for label in labels
    ]
    positives = sum(counts[("reused", v)] for v in verdicts)
    refused_right = counts[("reused", "reused")]
    refused_all = sum(counts[(label, "reused")] for label in labels)
    caught = counts[("reused", "reused")] + counts[("reused", "similar")]
    flagged_negatives = counts[("different", "similar")] + counts[("demo", "similar")]
    per_check_ms = 1000 * check_cpu / max(1, checks)
    per_compare_ms = 1000 * compare_cpu / max(1, sum(counts.values()))

    def pct(a: int, b: int) -> str:
        return f"{100 * a / b:.1f} % ({a}/{b})" if b else "n/a"

    return "\n".join(
        [
            "## Matching: admission-photo reuse check (`python -m bench.matching.reuse`, issue 15.5)",
            "",
            "Labelled set of tests/support/reuse_sets.py, dlib engine, decided as the worker decides "
            f"(services/matching/reuse.py: hash ≤ {REUSE_MAX_HAMMING} bits, structure ≤ "
            f"{REUSE_MAX_STRUCTURE}, gain ≤ {REUSE_MAX_GAIN}, red/blue balance ≤ {REUSE_MAX_BALANCE}, "
            f"descriptor score ≥ {SIMILAR_MIN_SCORE}).",
            "",
            "| label | pairs | refused (`reused`) | flagged (`similar`) | nothing |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"- Refusal: precision {pct(refused_right, refused_all)}, recall {pct(refused_right, positives)}.",
            f"- Refused or flagged (never silently passed): recall {pct(caught, positives)}; "
            f"negatives flagged for the reviewer: {flagged_negatives} "
            f"(demo: {counts[('demo', 'similar')]}, other people: {counts[('different', 'similar')]}).",
            f"- CPU: the check {per_check_ms:.2f} ms per comparison (face print + decision) beside "
            f"{per_compare_ms:.1f} ms for the comparison itself (ratio {per_check_ms / per_compare_ms:.3f}); "
            "process CPU time, one run, machine shared with other busy processes.",
            "",
            "Pairs the refusal gets wrong or only flags:",
            "",
            "| label | pair | verdict | evidence |",
            "|---|---|---|---|",
            *odd,
        ]
    )


if __name__ == "__main__":
    main()
