"""Command line for support staff and scripts: decode saved QR images without the service.

``python -m services.codec.cli decode FILE...`` prints one JSON object per file and line:
``{"file", "ok", "text", "ms", "stage", "error"}``; ``error`` is a DecodeError code or
``unreadable_file``. Exit status 0 only if every file decoded to exactly one code.
The text is printed raw (undecrypted): the CLI needs no key.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.codec.decode import DEFAULT_MAX_PIXELS, DecodeError, decode_image

UNREADABLE_FILE = "unreadable_file"


def decode_file(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """One JSON-ready result; never raises for a bad file, so a batch always completes."""
    start = time.perf_counter()
    result: dict[str, Any] = {
        "file": path,
        "ok": False,
        "text": None,
        "ms": 0.0,
        "stage": None,
        "error": None,
    }
    try:
        data = Path(path).read_bytes()
    except OSError:
        result["error"] = UNREADABLE_FILE
    else:
        try:
            decoded = decode_image(data, max_pixels=max_pixels)
        except DecodeError as exc:
            result["error"] = exc.code
        else:
            result.update(ok=True, text=decoded.texts[0], stage=decoded.stage)
    result["ms"] = round((time.perf_counter() - start) * 1000.0, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.codec.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode QR images, one JSON line per file")
    decode.add_argument("files", nargs="+", metavar="FILE")
    decode.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decompression-bomb limit")
    args = parser.parse_args(argv)

    all_ok = True
    for path in args.files:
        result = decode_file(path, max_pixels=args.max_pixels)
        all_ok = all_ok and result["ok"]
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
