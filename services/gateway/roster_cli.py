"""`python -m services.gateway.roster_cli import --school CODE ROSTER [--photos ZIP]`: import a roster."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from services.gateway.roster import RosterError, import_roster, read_photos, read_rows
from shared.blobs import BlobStore
from shared.config import Settings
from shared.db import Database


async def _run(args: argparse.Namespace, rows: list[dict[str, str]], photos: dict[str, bytes] | None) -> int:
    database = Database(Settings())
    try:
        # The shared indexes (GridFS's among them), as a service creates them at start-up: this may run first.
        await database.ensure_indexes()
        report = await import_roster(database, BlobStore(database), args.school, rows, photos)
    finally:
        await database.close()
    # The face check of the admission photos is matching's: `python -m services.matching.cli precompute
    # --school CODE` reads each photo once, stores its descriptor and lists the unusable ones.
    out = report.as_dict() | {"ok": not report.rejected, "face_check": "services.matching.cli precompute"}
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0 if not report.rejected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.roster_cli")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import or update a school's roster and admission photos")
    imp.add_argument("--school", required=True, help="school code (院校代码)")
    imp.add_argument("roster", help="CSV or XLSX with 姓名, 学号, 证件号后4位, 班级, 层次, 是否参加现场拍摄")
    imp.add_argument("--photos", help="zip of admission photos named <学号>.jpg")
    imp.add_argument(
        "--no-face-check",
        action="store_true",
        help="ignored: the face check is `services.matching.cli precompute`",
    )
    args = parser.parse_args(argv)
    roster = Path(args.roster)
    try:
        rows = read_rows(roster.read_bytes(), roster.name)
        photos = read_photos(Path(args.photos).read_bytes()) if args.photos else None
    except (OSError, RosterError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        return 2
    return asyncio.run(_run(args, rows, photos))


if __name__ == "__main__":
    sys.exit(main())
