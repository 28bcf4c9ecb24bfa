"""`python -m services.gateway.privacy_cli rotate|retention|erase`: the personal-data jobs by hand.

- `rotate [--dry-run] [--batch N]`: re-encrypt every stored phone number under the current data key
  (GATEWAY_DATA_KEYS' first entry). Refuses, writing nothing, when any token cannot be decrypted (exit 2).
- `retention [--days D] [--batch N] [--now ISO]`: purge photos and derived data of applications delivered
  more than D days ago (RETENTION_DAYS_AFTER_DELIVERY by default), then of applications abandoned for
  RETENTION_DAYS_IF_UNDELIVERED days (`--undelivered-days`; 0 skips that part).
- `erase APPLICATION_ID --reason TEXT [--operator NAME]`: PIPL erasure of the student behind it.
Each prints one JSON object with counts (never personal data) on stdout; settings come from the usual
environment (MONGO_URL, MONGO_DB, GATEWAY_DATA_KEYS / GATEWAY_DATA_KEY, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.gateway.config import GatewaySettings
from services.gateway.console.audit import AuditLog
from services.gateway.erasure import ErasureRefused, erase_application
from services.gateway.privacy import KeyConfigError, cipher_from_settings
from services.gateway.rekey import RotationRefused, rotate_phones
from services.gateway.retention import purge_abandoned, purge_delivered
from shared.blobs import BlobStore
from shared.config import load_settings
from shared.db import Database
from shared.events import utcnow
from shared.runtime import setup_logging


def _print(out: dict[str, Any]) -> None:
    print(json.dumps(out, ensure_ascii=False, default=str))


def _clock(text: str | None) -> Callable[[], datetime]:
    if not text:
        return utcnow
    fixed = datetime.fromisoformat(text)
    fixed = fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC)
    return lambda: fixed


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    try:
        cipher = cipher_from_settings(settings)
    except KeyConfigError as exc:
        _print({"command": args.command, "ok": False, "error": "key_config", "message": str(exc)})
        return 2
    database = Database(settings)
    blobs = BlobStore(database)
    try:
        if args.command == "rotate":
            try:
                report = await rotate_phones(database, cipher, batch_size=args.batch, dry_run=args.dry_run)
            except RotationRefused as exc:
                _print(
                    {"command": "rotate", "ok": False, "error": "unreadable_tokens", **exc.report.as_dict()}
                )
                return 2
            _print({"command": "rotate", "ok": True, "dry_run": args.dry_run, **report.as_dict()})
            return 0
        if args.command == "retention":
            days = args.days if args.days is not None else settings.retention_days_after_delivery
            retained = await purge_delivered(
                database, blobs, period=timedelta(days=days), now=_clock(args.now), batch_size=args.batch
            )
            undelivered = (
                args.undelivered_days
                if args.undelivered_days is not None
                else settings.retention_days_if_undelivered
            )
            abandoned = (
                await purge_abandoned(
                    database,
                    blobs,
                    period=timedelta(days=undelivered),
                    now=_clock(args.now),
                    batch_size=args.batch,
                )
                if undelivered > 0
                else None
            )
            _print(
                {
                    "command": "retention",
                    "ok": True,
                    **retained.as_dict(),
                    "abandoned": abandoned.as_dict() if abandoned else None,
                }
            )
            return 0
        operator_id = f"cli:{args.operator or getpass.getuser()}"
        try:
            result = await erase_application(
                database, blobs, cipher, args.application_id, reason=args.reason, operator_id=operator_id
            )
        except ErasureRefused as exc:
            await AuditLog(database).record(
                None, None, "application.erase", email=operator_id, outcome="refused", error=exc.code
            )
            _print({"command": "erase", "ok": False, "error": exc.code, "state": exc.application_state})
            return 3
        if result is None:
            _print({"command": "erase", "ok": False, "error": "not_found"})
            return 4
        record = result.record
        await AuditLog(database).record(
            None,
            None,
            "application.erase",
            email=operator_id,
            application_ref=record["_id"],
            school_code=record.get("school_code"),
            reason=args.reason,
            already_erased=result.already_erased,
            counts=record.get("counts"),
        )
        _print(
            {
                "command": "erase",
                "ok": True,
                "erasure_ref": record["_id"],
                "already_erased": result.already_erased,
                "counts": record.get("counts"),
                "orders_kept": len(record.get("orders") or []),
            }
        )
        return 0
    finally:
        await database.close()


def _reason(text: str) -> str:
    text = text.strip()
    if not 4 <= len(text) <= 200:
        raise argparse.ArgumentTypeError("the reason must be 4-200 characters")
    return text


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("the batch size must be 1-10000")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.privacy_cli")
    sub = parser.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate", help="re-encrypt stored phone numbers under the current data key")
    rotate.add_argument("--dry-run", action="store_true", help="only check that every token decrypts")
    rotate.add_argument("--batch", type=_batch, default=500, metavar="N")
    retention = sub.add_parser("retention", help="purge photos of applications delivered long enough ago")
    retention.add_argument("--days", type=float, help="override RETENTION_DAYS_AFTER_DELIVERY")
    retention.add_argument(
        "--undelivered-days", type=float, help="override RETENTION_DAYS_IF_UNDELIVERED (0: skip)"
    )
    retention.add_argument("--batch", type=_batch, default=100, metavar="N")
    retention.add_argument("--now", help="ISO time to count from (default: now)")
    erase = sub.add_parser("erase", help="PIPL erasure of the student behind an application")
    erase.add_argument("application_id")
    erase.add_argument("--reason", required=True, type=_reason, help="why (ticket number); no personal data")
    erase.add_argument("--operator", help="who asked (default: the login name)")
    args = parser.parse_args(argv)
    if args.command == "retention" and args.days is not None and args.days <= 0:
        parser.error("--days must be positive")
    if args.command == "retention" and args.undelivered_days is not None and args.undelivered_days < 0:
        parser.error("--undelivered-days must be 0 or more")
    if args.command == "retention" and args.now:
        try:
            _clock(args.now)
        except ValueError:
            parser.error("--now must be an ISO-8601 time")
    settings = load_settings(GatewaySettings)
    setup_logging(settings)  # log lines go to stderr; stdout carries only the JSON report
    return asyncio.run(_run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
