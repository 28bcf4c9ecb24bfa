"""Re-encryption of stored phone numbers under the current data key (key rotation, docs/operations.md).

Two passes over `users` in `_id` order, in batches: the first only decrypts, and if any token cannot be
read (a key id missing from the ring, a wrong key, damage) nothing is written at all; the second rewrites
each token not yet under the current key with a compare-and-set on the old token, so a phone number
authorised meanwhile (already under the current key) is never overwritten. Running it again finds
nothing to do: it is idempotent, and an interrupted run is resumed by running it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from services.gateway.privacy import FieldCipher, UndecryptableToken
from shared.db import Database, Document
from shared.logging import get_logger

log = get_logger(__name__)


class RotationRefused(Exception):
    """Some tokens cannot be decrypted with the configured keys: nothing was rewritten."""

    def __init__(self, report: RotationReport) -> None:
        super().__init__(f"{report.unreadable} phone numbers cannot be decrypted; nothing was rewritten")
        self.report = report


@dataclass
class RotationReport:
    current_key: str
    scanned: int = 0
    rotated: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0
    unreadable: int = 0
    # Tokens per key id before the run (no personal data: counts only).
    by_key: Counter[str] = field(default_factory=Counter)
    unreadable_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "current_key": self.current_key,
            "scanned": self.scanned,
            "rotated": self.rotated,
            "already_current": self.already_current,
            "changed_meanwhile": self.changed_meanwhile,
            "unreadable": self.unreadable,
            "by_key": dict(sorted(self.by_key.items())),
            "unreadable_reasons": dict(sorted(self.unreadable_reasons.items())),
        }


def _context(openid: str) -> str:
    return f"phone:{openid}"  # the associated data services/gateway/api/account.py encrypts with


async def _batches(database: Database, batch_size: int) -> AsyncIterator[list[Document]]:
    users = database.db["users"]
    last: str | None = None
    while True:
        query: dict[str, Any] = {"phone_encrypted": {"$exists": True}}
        if last is not None:
            query["_id"] = {"$gt": last}
        batch = [
            doc async for doc in users.find(query, {"phone_encrypted": 1}).sort("_id", 1).limit(batch_size)
        ]
        if not batch:
            return
        yield batch
        last = str(batch[-1]["_id"])


async def rotate_phones(
    database: Database, cipher: FieldCipher, *, batch_size: int = 500, dry_run: bool = False
) -> RotationReport:
    """Move every stored phone number to `cipher.current`; raises RotationRefused before writing anything
    when a token is unreadable."""
    check = RotationReport(current_key=cipher.current)
    async for batch in _batches(database, batch_size):
        for doc in batch:
            token = doc.get("phone_encrypted")
            if not isinstance(token, str):
                continue
            check.scanned += 1
            check.by_key[FieldCipher.key_id_of(token)] += 1
            try:
                cipher.decrypt(token, context=_context(str(doc["_id"])))
            except UndecryptableToken:
                check.unreadable += 1
                check.unreadable_reasons[f"key {FieldCipher.key_id_of(token)}"] += 1
    if check.unreadable:
        log.error("key rotation refused", unreadable=check.unreadable, current_key=cipher.current)
        raise RotationRefused(check)
    if dry_run:
        check.already_current = sum(n for k, n in check.by_key.items() if k == cipher.current)
        return check

    report = RotationReport(current_key=cipher.current, by_key=check.by_key)
    users = database.db["users"]
    async for batch in _batches(database, batch_size):
        for doc in batch:
            token = doc.get("phone_encrypted")
            if not isinstance(token, str):
                continue
            report.scanned += 1
            if not cipher.needs_rotation(token):
                report.already_current += 1
                continue
            try:
                rotated = cipher.rotate(token, context=_context(str(doc["_id"])))
            except UndecryptableToken:
                report.unreadable += 1  # appeared after the check pass (a key removed meanwhile)
                continue
            written = await users.update_one(
                {"_id": doc["_id"], "phone_encrypted": token}, {"$set": {"phone_encrypted": rotated}}
            )
            if written.modified_count == 1:
                report.rotated += 1
            else:
                report.changed_meanwhile += 1
        log.info("key rotation batch", rotated=report.rotated, scanned=report.scanned)
    return report
