"""Command line for support staff and scripts: compare two photos, or check admission photos.

``python -m services.matching.cli compare IMAGE_A IMAGE_B`` prints one JSON object:
``{"score", "passed", "pass_mark", "engine", "model", "ms", "raw", "faces", "timings_ms", "error",
"error_image"}``. ``error`` is a problem code (``no_face``, ``multiple_faces``, ``face_too_small``,
``unreadable``, ``too_large``, ``unreadable_file``) and ``error_image`` the file it concerns; ``score``
is then null. Exit status: 0 passed, 1 compared but below the pass mark, 2 not compared.

``python -m services.matching.cli check FILE...`` runs the roster import's admission-photo check, one
JSON line per file; exit status 0 only if every photo is usable.

The engine comes from the MATCHING_* environment (dlib unless an insightface pack is configured);
``--engine`` and ``--model-dir`` override it. Nothing about the faces is printed but counts and sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.matching.admission import check_admission_photo
from services.matching.compare import FaceRules, compare_photos
from services.matching.config import MatchingSettings
from services.matching.engines import EngineUnavailable, engine_for
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
        all_ok = True
        for path in args.files:
            line = check_file(path, settings)
            all_ok = all_ok and bool(line["ok"])
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return 0 if all_ok else 1
    except (EngineUnavailable, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
