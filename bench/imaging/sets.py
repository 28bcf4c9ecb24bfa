"""Precision and recall of the imaging measures on the labelled sets (tests/support/imaging_sets.py).

Run: ``.venv/bin/python -m bench.imaging.sets [--no-write]``. Every photo goes through the whole
pipeline (``check_photo``); a photo counts as *caught* for a class when one of that class's reason
codes refuses it or flags it for the review (advisory), and as *refused* when one refuses it. The
"before" column of headwear re-applies the colour rule this project used until this change (the
crown's share of non-hair colours > 4%) to the same canvases. Results go to ``bench/RESULTS.md``
between the ``bench-imaging-sets`` markers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np

from bench.results import write_section
from services.imaging.config import PhotoStandard
from services.imaging.load import open_photo
from services.imaging.pipeline import Report, check_photo
from services.imaging.preprocess import (
    FACE_EDGE_LEFT,
    FACE_EDGE_RIGHT,
    FOREHEAD,
    FaceModels,
    ModelPool,
    analyse,
)
from services.imaging.quality import Canvas, _unnatural_hair_colour, measured_head_top, to_lab
from services.imaging.residue import find_residue, repair_residue
from services.imaging.standardize import head_features, place, render
from tests.support import imaging_sets
from tests.support.faces import jpeg

# The reason codes that catch each class (head_proportions: a hat too tall to place the head).
CLASS_CODES = {
    "headwear": {"headwear", "head_proportions"},
    "residue": {"background_residue"},
    "recapture": {"recaptured"},
    "beautification": {"beautified"},
}


@dataclass
class Outcome:
    name: str
    positive: bool
    refused: bool
    flagged: bool
    before: bool | None = None  # the colour rule's verdict (headwear only)
    other: tuple[str, ...] = ()  # what else refused it


def judge(report: Report, codes: set[str]) -> tuple[bool, bool]:
    refused = bool(codes & set(report.reasons))
    flagged = bool(codes & set(report.flags))
    return refused, flagged


def rates(outcomes: Iterable[Outcome], caught: str) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, true negatives) for ``caught``."""
    tp = fp = fn = tn = 0
    for o in outcomes:
        hit = {"refused": o.refused, "caught": o.refused or o.flagged, "before": bool(o.before)}[caught]
        if o.positive and hit:
            tp += 1
        elif o.positive:
            fn += 1
        elif hit:
            fp += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def pr_row(label: str, counts: tuple[int, int, int, int]) -> str:
    tp, fp, fn, tn = counts
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    # For the negatives (bare heads): the share passed, i.e. the class's own recall.
    negative_recall = tn / (tn + fp) if tn + fp else float("nan")
    return f"| {label} | {tp} | {fp} | {fn} | {tn} | {precision:.2f} | {recall:.2f} | {negative_recall:.2f} |"


def colour_rule(rgb: np.ndarray, models: FaceModels, standard: PhotoStandard) -> bool:
    """The headwear verdict of the colour rule used until this change, on the same canvas."""
    photo = open_photo(jpeg(rgb), max_bytes=1 << 25, max_pixels=10**8, min_side=16)
    analysis = analyse(photo, models, min_confidence=0.5, second_face_min_ratio=0.35)
    if analysis.landmarks is None:
        return False
    placement = place(analysis, standard)
    if placement is None:
        return True  # refused for head_proportions then too
    c = Canvas.build(analysis, placement, render(analysis, placement, standard), standard)
    fw = c.face_width
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    top, forehead = measured_head_top(c), float(c.points[FOREHEAD, 1])
    region = c.box(cx, (top + forehead) / 2, 0.45 * fw, max(0.0, (forehead - top) / 2))
    solid = cv2.erode((c.rendered.alpha[region] > 0.98).astype(np.uint8), np.ones((9, 9), np.uint8))
    lab = to_lab(c.rendered.rgb[region])[solid.astype(bool)]
    return lab.shape[0] >= 300 and _unnatural_hair_colour(lab) > 0.04


def run_set(items: list[tuple[str, np.ndarray, bool]], codes: set[str], pool: ModelPool) -> list[Outcome]:
    standard = PhotoStandard()
    outcomes = []
    with pool.borrow() as models:
        for name, rgb, positive in items:
            report = check_photo(jpeg(rgb), models, standard=standard)
            refused, flagged = judge(report, codes)
            before = colour_rule(rgb, models, standard) if "headwear" in codes else None
            outcomes.append(Outcome(name, positive, refused, flagged, before, tuple(report.reasons)))
    return outcomes


def table(title: str, outcomes: list[Outcome], with_before: bool) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"{sum(o.positive for o in outcomes)} positives, {sum(not o.positive for o in outcomes)} negatives.",
        "",
        "| verdict | TP | FP | FN | TN | precision | recall | negatives passed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if with_before:
        lines.append(pr_row("before: colour rule, refused", rates(outcomes, "before")))
    lines.append(pr_row("refused", rates(outcomes, "refused")))
    lines.append(pr_row("refused or flagged for review", rates(outcomes, "caught")))
    misses = [
        o.name + (f" (refused: {', '.join(o.other)})" if o.other else "")
        for o in outcomes
        if o.positive and not (o.refused or o.flagged)
    ]
    false = [o.name for o in outcomes if not o.positive and (o.refused or o.flagged)]
    lines += [
        "",
        f"Missed: {', '.join(misses) or 'none'}.",
        "",
        f"False alarms: {', '.join(false) or 'none'}.",
        "",
    ]
    return lines


def _decoded(jpeg_bytes: bytes) -> np.ndarray:
    return cv2.cvtColor(
        cv2.imdecode(np.frombuffer(jpeg_bytes, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: float) -> np.ndarray:
    ref = to_lab(np.array([[colour]], np.uint8))[0, 0]
    near: np.ndarray = np.linalg.norm(to_lab(rgb) - ref, axis=-1) < tolerance
    return near


def _residue_px(jpeg_bytes: bytes, colour: tuple[int, int, int] | None, blue: tuple[int, int, int]) -> int:
    """The object's colour on the output; for a wall (colour None), near-white beside the blue."""
    rgb = _decoded(jpeg_bytes)
    if colour is not None:
        return int(_near(rgb, colour, 10).sum())
    background = _near(rgb, blue, 8)
    band = cv2.dilate(background.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~background
    return int((band & _near(rgb, (246, 246, 240), 12)).sum())


def _forced_residue(models: FaceModels) -> list[str]:
    """The matte made to fail on purpose on each portrait's canvas: a pale window kept above the head,
    a light rim painted along the hair. Found = ≥ 70% of the truth's pixels found; repaired = ≤ 10%
    of them still in the old colour after the repair. Before: no measure, no repair."""
    standard = PhotoStandard()
    blue = standard.background_rgb
    lines = [
        "### residue made on purpose (the matte failing, known truth)",
        "",
        "| case | portrait | truth px | found | old colour left after repair | clean canvas reads |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in ("astronaut", "group2", "group5"):
        rgb = imaging_sets.BARE_SOURCES[name]()
        analysis = imaging_sets._analysis(models, rgb)
        placement = place(analysis, standard)
        if placement is None:
            continue
        canvas = Canvas.build(analysis, placement, render(analysis, placement, standard), standard)
        assert analysis.landmarks is not None
        chin, features, face = head_features(
            analysis.landmarks, placement, (standard.width_px, standard.height_px)
        )
        r0 = canvas.rendered
        clean = find_residue(r0.source, r0.alpha, r0.rgb, r0.inside, blue, chin, features, face).pixels
        for case, make in (("kept window", imaging_sets.kept_window), ("light rim", imaging_sets.light_rim)):
            r, truth, colour = make(canvas)
            found = find_residue(r.source, r.alpha, r.rgb, r.inside, blue, chin, features, face)
            hit = int(((found.blobs | found.rims) & truth).sum())
            alpha, fixed = repair_residue(r.source, r.alpha, r.rgb, found, blue)
            if found.reaches_deeper:
                again = find_residue(r.source, alpha, fixed, r.inside, blue, chin, features, face)
                alpha, fixed = repair_residue(r.source, alpha, fixed, again, blue)
            left = float(_near(fixed, colour, 10)[truth].mean())
            lines.append(
                f"| {case} | {name} | {int(truth.sum())} | {hit / max(1, int(truth.sum())):.0%} | {left:.0%} | {clean} px |"
            )
    lines += ["", "Before this change: no measure and no repair (every case delivered as it is).", ""]
    return lines


def residue_table(models: FaceModels) -> list[str]:
    """Residue found / missed / false before (no measure, no repair) and after, with known truth.

    Truth: a case has residue when, with the repair switched off, the object's colour (or, before a
    bright wall, a near-white rim beside the blue) covers > 40 more output pixels than on the same
    portrait's plain output. After: found = the colour is gone (repaired) or the photo is flagged or
    refused; missed = still there, unflagged; false = a clean composite flagged or refused.
    """
    standard, unrepaired = PhotoStandard(), PhotoStandard(repair_residue=False)
    blue = standard.background_rgb
    rows = {"truth": 0, "repaired": 0, "flagged": 0, "missed": 0, "false": 0, "clean": 0, "no-residue": 0}
    missed_names: list[str] = []
    for name in ("astronaut", "group2", "group5"):
        rgb = imaging_sets.BARE_SOURCES[name]()
        a = imaging_sets._analysis(models, rgb)
        plain = check_photo(jpeg(rgb), models, standard=standard).jpeg
        assert plain is not None
        cases: list[tuple[str, np.ndarray, tuple[int, int, int] | None]] = [
            (kind, imaging_sets.object_touching_hair(rgb, a, kind)[0], colour)
            for kind, colour in imaging_sets.RESIDUE_OBJECTS.items()
        ]
        cases.append(("bright-wall", imaging_sets.on_bright_wall(rgb, a), None))
        for kind, photo, colour in cases:
            off = check_photo(jpeg(photo), models, standard=unrepaired)
            on = check_photo(jpeg(photo), models, standard=standard)
            if off.jpeg is None or on.jpeg is None:
                continue
            base = _residue_px(plain, colour, blue)
            if _residue_px(off.jpeg, colour, blue) - base <= 40:
                rows["no-residue"] += 1
                continue
            rows["truth"] += 1
            flagged = "background_residue" in on.flags + on.reasons
            if _residue_px(on.jpeg, colour, blue) - base <= 40:
                rows["repaired"] += 1
            elif flagged:
                rows["flagged"] += 1
            else:
                rows["missed"] += 1
                missed_names.append(f"{kind}-{name}")
        for wall in ((150, 150, 150), (200, 190, 170), (236, 236, 236)):
            report = check_photo(
                jpeg(imaging_sets.on_bright_wall(rgb, a, wall=wall, face_px=None)), models, standard=standard
            )
            rows["clean"] += 1
            if "background_residue" in report.flags + report.reasons:
                rows["false"] += 1
    forced = _forced_residue(models)
    t = rows["truth"]
    return [
        *forced,
        "### residue (known truth)",
        "",
        f"{t + rows['no-residue']} composites with an object in the hair or a bright wall behind a small face "
        f"(3 portraits × 6); {t} leave residue on the output with the repair off (the truth), "
        f"{rows['no-residue']} do not (the matte alone removes them); {rows['clean']} clean composites.",
        "",
        "| | found | missed | false (clean flagged) |",
        "|---|---:|---:|---:|",
        f"| before (no measure, no repair) | 0 of {t} | {t} | 0 of {rows['clean']} |",
        f"| after (repaired {rows['repaired']}, flagged {rows['flagged']}) | {rows['repaired'] + rows['flagged']} of {t} "
        f"| {rows['missed']} | {rows['false']} of {rows['clean']} |",
        "",
        f"Missed: {', '.join(missed_names) or 'none'}.",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imaging.sets", description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only", choices=sorted(CLASS_CODES))
    args = parser.parse_args()
    pool = ModelPool(1)
    lines = [
        "## Imaging: labelled sets (`python -m bench.imaging.sets`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; every photo through the whole pipeline",
        "- caught = refused, or flagged for the manual review (advisory); sets: tests/support/imaging_sets.py",
        "",
    ]
    with pool.borrow() as models:
        sets = {
            "headwear": lambda: imaging_sets.headwear_set(models),
            "residue": lambda: [],
            "recapture": lambda: imaging_sets.recapture_set(),
            "beautification": lambda: imaging_sets.beautification_set(models),
        }
        built = {k: v() for k, v in sets.items() if args.only in (None, k)}
    for name, items in built.items():
        if name == "residue":  # judged against known truth, not by the set's labels
            with pool.borrow() as models:
                lines += residue_table(models)
            continue
        outcomes = run_set(items, CLASS_CODES[name], pool)
        lines += table(name, outcomes, with_before=name == "headwear")
    section = "\n".join(lines)
    sys.stdout.write(section + "\n")
    if not args.no_write and args.only is None:
        write_section("imaging-sets", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
