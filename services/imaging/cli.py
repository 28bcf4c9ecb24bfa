"""Command line for operators, support staff and the benchmark: judge and standardise photos offline.

``python -m services.imaging.cli standardize INPUT OUTPUT`` writes the standardised JPEG and prints a
JSON report; ``check INPUT`` prints the report only; ``print-sheet INPUT OUTPUT --name N
--student-number S`` lays a standardised photo out on 6-inch paper. The report is
``{"file", "ok", "checks": [{name, passed, value, score, code, threshold, message, advisory}],
"reasons", "flags", "geometry", "bytes", "ms", "error"}``; ``code`` is the reason code of a failed
check or ``ok``; ``reasons`` refuse the photo, ``flags`` (advisory failures) send it to the review.
Exit status: 0 whenever the photo could be judged (even if checks failed), 1 if the file could not be
read or is not a usable image, 2 for bad arguments. Thresholds come from ``IMAGING_*`` variables.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.imaging.config import PhotoStandard
from services.imaging.messages import rejection_message
from services.imaging.pipeline import Report, Source, check_photo
from services.imaging.preprocess import default_pool
from shared.print_sheet import PRINT_SIZES, render_print_sheet

UNREADABLE_FILE = "unreadable_file"


def report_json(path: str, report: Report) -> dict[str, Any]:
    """The JSON-ready report of one photo."""
    return {
        "file": path,
        "ok": report.ok,
        "checks": [
            {
                "name": m.code,
                "passed": m.passed,
                "value": m.raw,
                "score": m.score,
                "code": m.reason or "ok",
                "threshold": m.threshold,
                "message": rejection_message(m.reason) if m.reason else None,
                "advisory": m.advisory,
            }
            for m in report.measures
        ],
        "reasons": report.reasons,
        "flags": report.flags,
        "geometry": report.geometry,
        "bytes": len(report.jpeg) if report.jpeg is not None else None,
        "ms": round(report.ms, 1),
        "error": report.error,
    }


def judge(path: str, *, source: Source = "camera", standard: PhotoStandard | None = None) -> Report:
    """Check one file; an unreadable file is a report with ``error = unreadable_file``."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return Report(ok=False, error=UNREADABLE_FILE)
    with default_pool().borrow() as models:
        return check_photo(data, models, standard=standard or PhotoStandard(), source=source)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.imaging.cli", description=(__doc__ or "").splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    standardize = commands.add_parser("standardize", help="write the standardised JPEG and print the report")
    standardize.add_argument("input")
    standardize.add_argument("output")
    check = commands.add_parser("check", help="print the report only")
    check.add_argument("input")
    for sub in (standardize, check):
        sub.add_argument(
            "--source", choices=("camera", "album"), default="camera", help="album adds the background checks"
        )
    sheet = commands.add_parser(
        "print-sheet", help="lay a standardised photo out on 6-inch paper (300 dpi JPEG)"
    )
    sheet.add_argument("input", help="a standardised photo")
    sheet.add_argument("output")
    sheet.add_argument("--name", required=True)
    sheet.add_argument("--student-number", required=True)
    sheet.add_argument("--size", choices=sorted(PRINT_SIZES), default="2寸")
    sheet.add_argument("--font", help="a TrueType/OpenType font with Chinese glyphs")
    args = parser.parse_args(argv)

    if args.command == "print-sheet":
        try:
            photo = Path(args.input).read_bytes()
            data = render_print_sheet(
                photo,
                name=args.name,
                student_number=args.student_number,
                size=PRINT_SIZES[args.size],
                font_path=args.font,
            )
            Path(args.output).write_bytes(data)
        except (OSError, ValueError) as exc:
            _emit({"file": args.input, "ok": False, "error": type(exc).__name__})
            return 1
        _emit({"file": args.input, "ok": True, "output": args.output, "bytes": len(data)})
        return 0

    report = judge(args.input, source=args.source)
    payload = report_json(args.input, report)
    if args.command == "standardize" and report.jpeg is not None:
        try:
            Path(args.output).write_bytes(report.jpeg)
        except OSError:
            payload["error"] = "unwritable_output"
            _emit(payload)
            return 1
        payload["output"] = args.output
    _emit(payload)
    return 1 if report.error is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
