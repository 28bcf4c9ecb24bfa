"""Command line for support staff and scripts: compare two photos, or check admission photos.

``python -m services.matching.cli compare IMAGE_A IMAGE_B`` prints one JSON object:
``{"score", "passed", "pass_mark", "engine", "model", "ms", "raw", "faces", "timings_ms", "error",
"error_image"}``. ``error`` is a problem code (``no_face``, ``multiple_faces``, ``face_too_small``,
``unreadable``, ``too_large``, ``unreadable_file``) and ``error_image`` the file it concerns; ``score``
is then null. Exit status: 0 passed, 1 compared but below the pass mark, 2 not compared.

``python -m services.matching.cli check FILE...`` runs the roster import's admission-photo check, one
JSON line per file; exit status 0 only if every photo is usable.

``python -m services.matching.cli precompute --school CODE`` reads every admission photo of a school's
roster once (right after a roster import), stores its descriptor encrypted for the comparisons
(docs/matching.md, "The admission photo, read once") and prints one JSON line per student whose photo
is not usable, then a summary; exit status 0 only if every photo is usable. This is the roster import's
face check: the gateway does not run face detection itself.

``python -m services.matching.cli calibrate PAIRS.csv`` reads labelled pairs (columns ``image_a``,
``image_b``, ``same``: 1/0; paths relative to the file) and prints the measured false-accept and
false-reject rates at the configured pass point and the thresholds for FAR 1e-3, 1e-4 and 1e-5
(docs/matching.md, "Calibrating on your own data").

The engine comes from the MATCHING_* environment (dlib unless an insightface pack is configured);
``--engine`` and ``--model-dir`` override it. Nothing about the faces is printed but counts and sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.matching.admission import check_admission_photo
from services.matching.calibrate import rates, threshold_at_far
from services.matching.compare import FaceRules, PhotoReading, compare_photos, read_photo
from services.matching.config import MatchingSettings
from services.matching.engines import EngineUnavailable, engine_for
from services.matching.messages import ADMISSION_CHECK_MESSAGES
from services.matching.score import PASS_MARK

UNREADABLE_FILE = "unreadable_file"


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def compare_files(path_a: str, path_b: str, settings: MatchingSettings, pass_mark: float) -> dict[str, Any]:
    """One JSON-ready result; IMAGE_B plays the admission photo (its problems are reported first)."""
    data_a, data_b = _read(path_a), _read(path_b)
    result: dict[str, Any] = {
        "a": path_a,
        "b": path_b,
        "score": None,
        "passed": False,
        "pass_mark": pass_mark,
        "engine": settings.engine_name,
        "model": None,
        "raw": None,
        "ms": 0.0,
        "faces": {"a": None, "b": None},
        "timings_ms": {},
        "error": None,
        "error_image": None,
    }
    for path, data in ((path_b, data_b), (path_a, data_a)):
        if data is None:
            result.update(error=UNREADABLE_FILE, error_image=path)
            return result
    assert data_a is not None and data_b is not None
    engine = engine_for(settings)
    comparison = compare_photos(
        engine, data_a, data_b, pass_mark=pass_mark, rules=FaceRules.from_settings(settings)
    )
    result.update(
        score=comparison.score,
        passed=comparison.passed,
        engine=comparison.engine,
        model=comparison.model,
        raw=comparison.raw,
        ms=round(comparison.ms, 2),
        faces={"a": comparison.photo.faces_found, "b": comparison.admission_photo.faces_found},
        timings_ms=comparison.timings_ms,
    )
    for path, reading in ((path_b, comparison.admission_photo), (path_a, comparison.photo)):
        if reading.problem is not None:
            result.update(error=reading.problem, error_image=path)
            break
    return result


def check_file(path: str, settings: MatchingSettings) -> dict[str, Any]:
    data = _read(path)
    if data is None:
        return {"file": path, "ok": False, "reason": UNREADABLE_FILE}
    return {"file": path, **dataclasses.asdict(check_admission_photo(data, settings))}


def calibrate_file(path: str, settings: MatchingSettings, targets: Sequence[float]) -> dict[str, Any]:
    """Embed every listed photo once, score every pair, and measure the error rates."""
    base = Path(path).resolve().parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"image_a", "image_b", "same"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path} needs the columns image_a, image_b, same")
        rows = list(reader)
    engine = engine_for(settings)
    rules = FaceRules.from_settings(settings)
    readings: dict[str, PhotoReading] = {}
    genuine: list[float] = []
    impostor: list[float] = []
    problems: Counter[str] = Counter()
    for row in rows:
        embeddings = []
        for key in ("image_a", "image_b"):
            name = str(base / row[key])
            if name not in readings:
                data = _read(name)
                with engine.lock:
                    readings[name] = (
                        read_photo(engine, data, rules)
                        if data is not None
                        else PhotoReading(problem="missing")
                    )
            embeddings.append(readings[name].embedding)
            if readings[name].problem is not None:
                problems[str(readings[name].problem)] += 1
        first, second = embeddings
        if first is None or second is None:
            continue
        raw = engine.compare(first, second)
        (genuine if row["same"].strip().lower() in {"1", "true", "yes", "y"} else impostor).append(raw)
    higher = engine.scale.higher_raw_is_better
    current = rates(genuine, impostor, engine.scale.raw_at(PASS_MARK), higher_is_better=higher)
    points = {}
    for target in targets:
        point = threshold_at_far(genuine, impostor, target, higher_is_better=higher)
        points[f"{target:g}"] = (
            dataclasses.asdict(point)
            if point is not None
            else f"needs at least {math.ceil(1 / target)} impostor pairs"
        )
    setting = (
        "MATCHING_INSIGHTFACE_PASS_SIMILARITY"
        if engine.name == "insightface"
        else "MATCHING_DLIB_PASS_DISTANCE"
    )
    # The borderline band: from the pass mark down to the score at the FAR 1e-3 threshold (where
    # impostors start to pass), the same width above it (docs/matching.md, "Score bands").
    lenient = threshold_at_far(genuine, impostor, 1e-3, higher_is_better=higher)
    borderline = (
        round(max(1.0, abs(PASS_MARK - engine.scale.score(lenient.threshold))), 1) if lenient else None
    )
    return {
        "engine": engine.name,
        "model": engine.model,
        "borderline_points": borderline,
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "photos_not_usable": dict(problems),
        "pass_mark_setting": setting,
        "at_pass_mark": dataclasses.asdict(current),
        "at_far": points,
    }


async def precompute_school(school_code: str, settings: MatchingSettings) -> dict[str, Any]:
    """Read and store the admission descriptor of every student of a school; the unusable photos."""
    from services.matching.handlers import MatchingHandlers
    from shared.blobs import BlobStore
    from shared.db import Database

    engine = engine_for(settings)
    database = Database(settings)
    try:
        handlers = MatchingHandlers(database, BlobStore(database), settings, engine)
        counts: Counter[str] = Counter()
        unusable: list[dict[str, Any]] = []
        cursor = database.db["students"].find(
            {"school_code": school_code}, {"admission_photo_blob_id": 1, "student_number": 1}
        )
        async for student in cursor:
            blob_id = student.get("admission_photo_blob_id")
            if not blob_id:
                counts["no_photo"] += 1
                continue
            reading = await handlers.admission_reading(str(student["_id"]), str(blob_id))
            counts[reading.located or "unusable"] += 1
            if reading.problem is not None:
                unusable.append(
                    {
                        "student_number": student.get("student_number"),
                        "reason": reading.problem,
                        "message": ADMISSION_CHECK_MESSAGES.get(str(reading.problem), reading.problem),
                    }
                )
    finally:
        await database.close()
    return {"school_code": school_code, "model": engine.model, "counts": dict(counts), "unusable": unusable}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.matching.cli", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--engine", choices=["auto", "dlib", "insightface"], help="override MATCHING_ENGINE")
    parser.add_argument(
        "--model-dir", help="insightface model pack directory (MATCHING_INSIGHTFACE_MODEL_DIR)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare two photos (B as the admission photo)")
    compare.add_argument("image_a", metavar="IMAGE_A")
    compare.add_argument("image_b", metavar="IMAGE_B")
    compare.add_argument("--pass-mark", type=float, default=PASS_MARK, help="0-100 (default 80)")
    check = commands.add_parser("check", help="check admission photos as the roster import does")
    check.add_argument("files", nargs="+", metavar="FILE")
    precompute = commands.add_parser(
        "precompute", help="store the admission descriptors of a school's roster; report unusable photos"
    )
    precompute.add_argument("--school", required=True, help="school code (院校代码)")
    calibrate = commands.add_parser(
        "calibrate", help="error rates on labelled pairs; thresholds for target FARs"
    )
    calibrate.add_argument("pairs", metavar="PAIRS.csv")
    calibrate.add_argument("--far", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5], help="target FARs")
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    if args.engine:
        overrides["matching_engine"] = args.engine
    if args.model_dir:
        overrides["matching_insightface_model_dir"] = args.model_dir
    try:
        settings = MatchingSettings(**overrides)
        if args.command == "compare":
            result = compare_files(args.image_a, args.image_b, settings, args.pass_mark)
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            if result["error"] is not None:
                return 2
            return 0 if result["passed"] else 1
        if args.command == "precompute":
            summary = asyncio.run(precompute_school(args.school, settings))
            for line in summary["unusable"]:
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.write(json.dumps({k: v for k, v in summary.items() if k != "unusable"}) + "\n")
            return 0 if not summary["unusable"] else 1
        if args.command == "calibrate":
            sys.stdout.write(
                json.dumps(calibrate_file(args.pairs, settings, args.far), ensure_ascii=False) + "\n"
            )
            return 0
        all_ok = True
        for path in args.files:
            line = check_file(path, settings)
            all_ok = all_ok and bool(line["ok"])
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return 0 if all_ok else 1
    except (EngineUnavailable, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
