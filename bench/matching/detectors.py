"""Which face detector for admission photos: dlib's HOG (today) against mediapipe's BlazeFace models.

``python -m bench.matching.detectors`` (``make bench-detectors``) pins itself to one CPU core and, on
real photos from installed packages only (tests/support/reuse_sets.py's ten admission photos: six
faces of insightface's group photo, scikit-image's astronaut, insightface's Tom Hanks crop, matplotlib's
Grace Hopper, deploy/local/faces.py's demo admission photo), measures per admission photo:

- the CPU time of detection (process CPU time, median of ``--repeats`` calls): ``DlibEngine.detect``
  (the path that reads admission photos today), mediapipe 0.10.21's short-range BlazeFace model
  (``model_selection=0``, made for faces that fill the frame) and its full-range model (``1``, what
  services/imaging/preprocess.py loads), each from the mediapipe wheel (no download);
- with each detector's largest face: dlib's 5-point landmarks and ResNet descriptor (unchanged), and the
  score of every pair exactly as the matching service scores it (``engine.scale``, pass mark 80).

The student's side of a pair is the project's own: a standardised photo made by imaging's pipeline
(reuse_sets.standardised, which also carries the eyes), read as the worker reads it
(``read_photo(..., eyes=...)``), so its descriptor is the same whichever detector reads the admission
photo. Student photos: each package face brightened 35 % and rolled ±6° (tests/support/matching_faces.py's
variants), and deploy/local/faces.py's student photos 0-7 for the demo admission photo (as bench/load
pairs them). Same-person pairs: each standardised photo with its own admission photo; different-person
pairs: with every other admission photo (the astronaut and the demo admission photo are one person and
are not paired with each other). A detector that finds nothing falls back to HOG, as the engine would.

For scale, the same HOG path on the admission photo saved once more as JPEG (q85): how far scores move
with no change of detector at all. Results go to bench/RESULTS.md between the ``bench-matching-detectors``
markers; the exit status is 0 whatever the verdict (the verdict is in the section).
"""

from __future__ import annotations

import os

# One core, one thread, before numpy/dlib/TFLite load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.matching.__main__ import _cpu_model  # noqa: E402
from bench.results import pin_to_one_core, write_section  # noqa: E402
from services.imaging.preprocess import detection_copy  # noqa: E402
from services.matching.compare import FaceRules, read_photo, the_face  # noqa: E402
from services.matching.engines import DetectedFace, DlibEngine, Embedding  # noqa: E402
from services.matching.photos import PhotoProblem, RGBImage, decode_photo  # noqa: E402
from services.matching.score import PASS_MARK  # noqa: E402
from tests.support import matching_faces as faces  # noqa: E402
from tests.support.reuse_sets import admission_photos, standardised  # noqa: E402

HOG = "HOG"
SHORT = "mediapipe short-range"
FULL = "mediapipe full-range"
DETECTORS = (HOG, SHORT, FULL)
MEDIAPIPE = (SHORT, FULL)
NOISE = "HOG, re-saved q85"  # the same detector on the admission photo saved once more as JPEG
# Imaging shrinks by an integer factor to at most this side before detection (preprocess.py); the same here.
DETECT_LONG_SIDE = 640
MIN_CONFIDENCE = 0.5
VARIANTS = ("brightened 35 %", "rotated 6 degrees", "rotated -6 degrees")
DEMO_STUDENT_PHOTOS = 8


class MediapipeDetector:
    """mediapipe's BlazeFace through its bundled graph, boxes in the image's pixels, largest first."""

    def __init__(self, model_selection: int) -> None:
        from services.imaging.preprocess import _quiet_native_stderr

        with _quiet_native_stderr():
            from mediapipe.python.solutions import face_detection

            self._graph: Any = face_detection.FaceDetection(
                model_selection=model_selection, min_detection_confidence=MIN_CONFIDENCE
            )
            self._graph.process(np.full((256, 256, 3), 128, np.uint8))  # the delegate starts here

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        height, width = image.shape[:2]
        small = detection_copy(image, DETECT_LONG_SIDE)
        found = []
        for detection in self._graph.process(small).detections or []:
            box = detection.location_data.relative_bounding_box
            found.append(
                DetectedFace(
                    x=box.xmin * width,
                    y=box.ymin * height,
                    width=box.width * width,
                    height=box.height * height,
                    score=float(detection.score[0]),
                )
            )
        return sorted(found, key=lambda f: f.width * f.height, reverse=True)


@dataclass
class AdmissionReading:
    name: str
    shape: tuple[int, int]
    cpu_ms: dict[str, float] = field(default_factory=dict)  # detection only, per detector
    read_ms: float = 0.0  # the whole HOG reading today: decode + detect + landmarks + descriptor
    faces: dict[str, int] = field(default_factory=dict)
    embedding: dict[str, Embedding] = field(default_factory=dict)
    problem: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    student: str
    admission: str
    same: bool
    scores: dict[str, float]  # per detector (after the HOG fallback), and NOISE


def _cpu_ms(call: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def _resaved(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def _embedding(engine: DlibEngine, image: RGBImage, found: list[DetectedFace], rules: FaceRules) -> Embedding:
    face = the_face(found, rules)  # raises PhotoProblem as the service would
    return engine.embed(engine.align(image, face))


def read_admissions(
    engine: DlibEngine, detectors: dict[str, Callable[[RGBImage], list[DetectedFace]]], repeats: int
) -> list[AdmissionReading]:
    rules = FaceRules()
    readings = []
    for name, data in admission_photos().items():
        image = decode_photo(data, max_bytes=rules.max_bytes, max_pixels=rules.max_pixels)
        reading = AdmissionReading(name, (image.shape[1], image.shape[0]))
        for label, detect in detectors.items():
            found = detect(image)
            reading.cpu_ms[label] = _cpu_ms(functools.partial(detect, image), repeats)
            reading.faces[label] = len(found)
            try:
                reading.embedding[label] = _embedding(engine, image, found, rules)
            except PhotoProblem as problem:
                reading.problem[label] = problem.code
        reading.read_ms = _cpu_ms(functools.partial(read_photo, engine, data, rules), repeats)
        resaved = decode_photo(_resaved(data), max_bytes=rules.max_bytes, max_pixels=rules.max_pixels)
        reading.embedding[NOISE] = _embedding(engine, resaved, engine.detect(resaved), rules)
        readings.append(reading)
    return readings


def student_photos() -> list[tuple[str, str, bytes]]:
    """(owner, label, source photo) before imaging; the demo's own student photos for its admission photo."""
    from deploy.local import faces as demo

    photos = []
    for name, data in admission_photos().items():
        if name == "demo_admission":
            photos += [
                (name, f"demo student photo {v}", demo.student_photo(v)) for v in range(DEMO_STUDENT_PHOTOS)
            ]
            continue
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        variants = faces.variants(image)
        photos += [(name, f"{name} {how}", variants[how]) for how in VARIANTS]
    return photos


def student_embeddings(engine: DlibEngine) -> tuple[list[tuple[str, str, Embedding]], list[str]]:
    """Each photo standardised by imaging, then read as the worker reads it (imaging's eyes first)."""
    rules = FaceRules()
    out, refused = [], []
    for owner, label, source in student_photos():
        placed = standardised(source)
        if placed is None:
            refused.append(label)
            continue
        reading = read_photo(engine, placed[0], rules, eyes=placed[1])
        if reading.embedding is None:
            refused.append(f"{label} (matching: {reading.problem})")
            continue
        out.append((owner, label, reading.embedding))
    return out, refused


def pairs_of(
    engine: DlibEngine, admissions: list[AdmissionReading], students: list[tuple[str, str, Embedding]]
) -> list[Pair]:
    one_person = {"astronaut", "demo_admission"}
    out = []
    for owner, label, student in students:
        for reading in admissions:
            if owner != reading.name and {owner, reading.name} == one_person:
                continue
            if HOG not in reading.embedding:
                continue  # today's path cannot use this admission photo: nothing to compare against
            scores = {}
            for detector in (*DETECTORS, NOISE):
                # The proposed path: mediapipe, HOG when mediapipe finds no usable face.
                admission = reading.embedding.get(detector, reading.embedding[HOG])
                scores[detector] = engine.scale.score(engine.compare(student, admission))
            out.append(Pair(label, reading.name, owner == reading.name, scores))
    return out


def run(repeats: int) -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    engine = DlibEngine()
    short, full = MediapipeDetector(0), MediapipeDetector(1)
    detectors: dict[str, Callable[[RGBImage], list[DetectedFace]]] = {
        HOG: engine.detect,
        SHORT: short.detect,
        FULL: full.detect,
    }
    admissions = read_admissions(engine, detectors, repeats)
    # Photos with no face at all (the tests' own): a detector must find none there.
    no_face = {
        "scikit-image chelsea (cat)": faces.no_face(),
        "insightface mask_blue.jpg": np.asarray(
            Image.open(faces.insightface_images() / "mask_blue.jpg").convert("RGB")
        ),
    }
    false_faces = {
        name: {label: len(detect(image)) for label, detect in detectors.items()}
        for name, image in no_face.items()
    }
    students, refused = student_embeddings(engine)
    return {
        "admissions": admissions,
        "pairs": pairs_of(engine, admissions, students),
        "refused": refused,
        "false_faces": false_faces,
        "repeats": repeats,
        "load": load,
    }


def _delta(pair: Pair, detector: str) -> float:
    return round(pair.scores[detector] - pair.scores[HOG], 2)


def _same_decision(pair: Pair, detector: str) -> bool:
    return (pair.scores[detector] >= PASS_MARK) == (pair.scores[HOG] >= PASS_MARK)


def verdicts(result: dict[str, Any]) -> dict[str, tuple[bool, bool, bool]]:
    """Per mediapipe model: (faster, every pair within 1 point, every decision the same)."""
    admissions: list[AdmissionReading] = result["admissions"]
    pairs: list[Pair] = result["pairs"]
    hog_ms = statistics.median(a.cpu_ms[HOG] for a in admissions)
    return {
        detector: (
            statistics.median(a.cpu_ms[detector] for a in admissions) < hog_ms,
            all(abs(_delta(p, detector)) <= 1.0 for p in pairs),
            all(_same_decision(p, detector) for p in pairs),
        )
        for detector in MEDIAPIPE
    }


def report(result: dict[str, Any]) -> str:
    admissions: list[AdmissionReading] = result["admissions"]
    pairs: list[Pair] = result["pairs"]
    same = [p for p in pairs if p.same]
    different = [p for p in pairs if not p.same]
    median_ms = {d: statistics.median(a.cpu_ms[d] for a in admissions) for d in DETECTORS}
    read_ms = statistics.median(a.read_ms for a in admissions)
    lines = [
        "## Matching: the admission photo's face detector (`python -m bench.matching.detectors`, issue 16.1)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu_model()}; pinned to 1 core; Python {platform.python_version()}; load average "
        f"{result['load']:.1f} at the start (the machine is shared: compare the ratios)",
        f"- libraries: dlib-bin {metadata.version('dlib-bin')}, mediapipe {metadata.version('mediapipe')} "
        "(its bundled BlazeFace graphs, no download)",
        f"- inputs: {len(admissions)} admission photos from installed packages (8 people: the astronaut and "
        f"the demo admission photo are one); {len(same) + len(result['refused'])} student photos standardised "
        f"by imaging, {len(result['refused'])} refused by imaging, {len(same)} same-person pairs, "
        f"{len(different)} different-person pairs. **Few photos: the result is indicative.**",
        f"- CPU time per call, median of {result['repeats']} calls per photo, then median over photos; a "
        "detector that finds no usable face falls back to HOG for the scores.",
        "",
        "| admission photo | size | faces: HOG / short / full | detection CPU ms: HOG / short / full "
        "| descriptor moved from HOG's: short / full |",
        "|---|---|---|---|---|",
    ]
    for a in admissions:
        found = " / ".join(
            f"{a.faces[d]}" + (f" ({a.problem[d]})" if d in a.problem else "") for d in DETECTORS
        )
        ms = " / ".join(f"{a.cpu_ms[d]:.1f}" for d in DETECTORS)
        moved = " / ".join(
            f"{float(np.linalg.norm(a.embedding[d] - a.embedding[HOG])):.3f}" if d in a.embedding else "-"
            for d in MEDIAPIPE
        )
        lines.append(f"| {a.name} | {a.shape[0]} × {a.shape[1]} | {found} | {ms} | {moved} |")
    lines.append("| **median** | | | **" + " / ".join(f"{median_ms[d]:.1f}" for d in DETECTORS) + "** | |")
    lines += [
        "",
        "Descriptor moved: the dlib distance between the admission photo's descriptor through HOG's box and "
        "through mediapipe's (dlib's same-person threshold is 0.6; the scale gives 33 points per unit below "
        "it and 200 above).",
    ]
    lines += ["", "Photos with no face (a detector must find none): "]
    lines[-1] += (
        "; ".join(
            f"{name}: " + ", ".join(f"{d} {n}" for d, n in counts.items())
            for name, counts in result["false_faces"].items()
        )
        + "."
    )
    lines += [
        "",
        f"The whole admission reading today (decode + HOG + landmarks + descriptor) takes {read_ms:.0f} ms CPU "
        f"(median); detection is {median_ms[HOG] / read_ms:.0%} of it. With the short-range model it would be "
        f"about {read_ms - median_ms[HOG] + median_ms[SHORT]:.0f} ms, with the full-range one "
        f"{read_ms - median_ms[HOG] + median_ms[FULL]:.0f} ms per student, once, at roster import.",
        "",
        "| score difference from HOG (points) | same-person pairs: mean / max abs, > 1 pt | "
        "different-person pairs: mean / max abs, > 1 pt | pass/fail decisions that differ |",
        "|---|---|---|---|",
    ]
    for detector in (*MEDIAPIPE, NOISE):
        cells = []
        for group in (same, different):
            deltas = [abs(_delta(p, detector)) for p in group]
            cells.append(
                f"{statistics.mean(deltas):.2f} / {max(deltas):.2f}, {sum(d > 1.0 for d in deltas)} of {len(deltas)}"
            )
        flips = sum(not _same_decision(p, detector) for p in pairs)
        lines.append(f"| {detector} | {cells[0]} | {cells[1]} | {flips} of {len(pairs)} |")
    lines += [""]
    for detector, (faster, close, decisions) in verdicts(result).items():
        ok = faster and close and decisions
        lines.append(
            f"- {detector}: faster {'yes' if faster else 'NO'} ({median_ms[HOG] / median_ms[detector]:.1f}× "
            f"less CPU); every pair within 1 point {'yes' if close else 'NO'}; same decisions "
            f"{'yes' if decisions else 'NO'}: **{'meets' if ok else 'does not meet'}** the rule "
            "(faster, every score within 1 point, the same decisions)."
        )
    hog_same = [p.scores[HOG] for p in same]
    hog_diff = [p.scores[HOG] for p in different]
    lines += [
        f"- HOG scores: same-person pairs {min(hog_same):.2f}-{max(hog_same):.2f}, different-person pairs "
        f"{min(hog_diff):.2f}-{max(hog_diff):.2f} (pass mark {PASS_MARK:.0f}). Beyond the pass distance the "
        "scale is steep (200 points per unit of dlib distance against 33 below it), so different-person "
        "scores move by points when the face box moves by a few pixels: see the re-saved row.",
    ]
    if result["refused"]:
        lines.append(f"- Refused by imaging (no pair): {', '.join(result['refused'])}.")
    lines += [
        "",
        "<details><summary>Every pair</summary>",
        "",
        "| student photo (standardised) | admission photo | same person | HOG | short-range (Δ) | "
        "full-range (Δ) | HOG re-saved (Δ) | decisions |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for p in sorted(pairs, key=lambda p: (not p.same, p.student, p.admission)):
        row = " | ".join(f"{p.scores[d]:.2f} ({_delta(p, d):+.2f})" for d in (*MEDIAPIPE, NOISE))
        decided = "same" if all(_same_decision(p, d) for d in MEDIAPIPE) else "DIFFER"
        lines.append(
            f"| {p.student} | {p.admission} | {'yes' if p.same else 'no'} | {p.scores[HOG]:.2f} | {row} "
            f"| {decided} |"
        )
    lines += ["", "</details>"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.matching.detectors", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per photo and detector (median)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    pin_to_one_core()
    started = time.perf_counter()
    section = report(run(args.repeats))
    print(section)
    if not args.no_write:
        write_section("matching-detectors", section)
    print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
