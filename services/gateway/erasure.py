"""Erasure on request (PIPL 删除权): everything about a student is deleted, leaving an anonymised trail.

`erase_application` takes the application named in the request and every other application of the same
student (same `student_id`, and applications merged into one of them), and deletes:
- the application documents themselves (claim, verified code record with name, student number and ID
  fragment, confirmation and mailing choice, photos, match, review notes, last failure, outbox);
- every blob of theirs (raw and standardised photos, code images) and the workers' documents about them
  (`codes`, `photos`, `matches`, `notifications`), review leases;
- the student's WeChat side: the `users` documents (phone number, student summary), their `sessions`,
  the `bindings` row;
- personal fields in what must stay: `audit_log` entries about these applications keep the action, time
  and operator but name the application only by a keyed hash (`application_ref`) and lose any other
  target field that is not on a short list of non-personal ones; student searches that typed the
  student's name or number lose the query, audit searches by the application id get the hash instead;
  `payment_notifications` keep amounts and ids, not the payer; `delivery_batches` list the hash, not the id.
What stays, on purpose:
- an `erasures` record: `_id` = keyed hash (HMAC-SHA256 under the data key, `privacy.FieldCipher.keyed_hash`)
  of the application id, school code, times, counts, operator id, reason, and the accounting copy of the
  orders (ids, amounts, status, paid and refund figures; no openid);
- the roster row in `students` (the school's data, imported by the school; the school removes it);
- events already published to RabbitMQ queues (retry/dead queues hold copies until consumed or discarded).
An application a worker is still processing (`code_submitted`, `submitted`, a photo still `processing` at
imaging, or events not yet published) is refused with `application_in_flight`: the worker's result would
otherwise write data back. Retry once the state has moved on (seconds). Erasing again is idempotent: the
erasure record is found by its hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.gateway.domain.statuses import PhotoStatus
from services.gateway.privacy import FieldCipher
from services.gateway.retention import application_blob_ids, delete_blobs
from shared.blobs import BlobStore
from shared.db import Database, Document
from shared.events import utcnow
from shared.logging import get_logger
from shared.outbox import PENDING_FIELD

log = get_logger(__name__)

Clock = Callable[[], datetime]
PURPOSE = "erasure"
# States in which a worker's answer is still to come (it would write the student's data back).
IN_FLIGHT_STATES = frozenset({"code_submitted", "submitted"})
# A photo uploaded and not yet answered by imaging (whatever the application's state, e.g. `paid`): imaging
# would write its standardised rendering and its `photos` document back after the erasure.
IN_FLIGHT_PHOTO_STATUS = PhotoStatus.PROCESSING.value
# Audit target fields that identify nobody: everything else in an erased application's entries goes.
AUDIT_KEEP = frozenset(
    {
        "school_code",
        "photo_id",
        "kind",
        "amount_fen",
        "had_binding",
        "decision",
        "reason_code",
        "results",
        "outcome",
    }
)
WORKER_COLLECTIONS = ("codes", "photos", "matches", "notifications")
ORDER_KEEP = ("order_id", "out_trade_no", "amount_fen", "status", "created_at", "paid_at", "transaction_id")
REFUND_KEEP = ("out_refund_no", "amount_fen", "status", "requested_at", "completed_at")
PAYMENT_RESOURCE_KEEP = (
    "out_trade_no",
    "transaction_id",
    "trade_state",
    "amount",
    "success_time",
    "out_refund_no",
    "refund_id",
    "refund_status",
)


class ErasureRefused(Exception):
    def __init__(self, code: str, application_state: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.application_state = application_state


@dataclass
class ErasureResult:
    record: Document
    already_erased: bool
    # The WeChat accounts whose sessions were removed (not stored: for the caller's in-memory caches).
    openids: list[str] = field(default_factory=list)


def erasure_ref(cipher: FieldCipher, application_id: str) -> str:
    return cipher.keyed_hash(application_id, purpose=PURPOSE)


async def find_erasure(database: Database, cipher: FieldCipher, application_id: str) -> Document | None:
    """The erasure record of an application id, under whichever key of the ring hashed it."""
    refs = cipher.keyed_hashes(application_id, purpose=PURPOSE)
    found: Document | None = await database.db["erasures"].find_one({"_id": {"$in": refs}})
    return found


def accounting_order(order: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What accounting needs of an order, without the payer."""
    if not order:
        return None
    kept = {k: order.get(k) for k in ORDER_KEEP if order.get(k) is not None}
    refund = order.get("refund")
    if isinstance(refund, Mapping):
        kept["refund"] = {k: refund.get(k) for k in REFUND_KEEP if refund.get(k) is not None}
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, Mapping)]
    if refunds:
        kept["refunds"] = [{k: r.get(k) for k in REFUND_KEEP if r.get(k) is not None} for r in refunds]
    return kept


def ledger_orders(application: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every order ever issued for the application (domain/orders.py's ledger; before it, `order`)."""
    ledger = application.get("orders")
    if isinstance(ledger, list) and ledger:
        return [o for o in ledger if isinstance(o, Mapping)]
    single = application.get("order")
    return [single] if isinstance(single, Mapping) and single else []


async def _related_applications(database: Database, application: Document) -> list[Document]:
    """The application, the student's other applications, and those merged into any of them."""
    collection = database.db["applications"]
    found: dict[str, Document] = {application["_id"]: application}
    if application.get("student_id"):
        async for doc in collection.find({"student_id": application["student_id"]}, {"outbox": 0}):
            found.setdefault(doc["_id"], doc)
    frontier = list(found)
    while frontier:
        merged = [doc async for doc in collection.find({"merged_into": {"$in": frontier}}, {"outbox": 0})]
        frontier = [doc["_id"] for doc in merged if doc["_id"] not in found]
        for doc in merged:
            found.setdefault(doc["_id"], doc)
    return list(found.values())


def _personal_values(applications: list[Document], roster: Document | None) -> set[str]:
    """Names and student numbers as typed or decoded: searched for in the audit log's search queries."""
    values: set[str] = set()
    for doc in applications:
        for source in (doc.get("claim"), doc.get("verified_code")):
            if isinstance(source, Mapping):
                values.update(str(source[k]) for k in ("name", "student_number") if source.get(k))
    if roster:
        values.update(str(roster[k]) for k in ("name", "student_number") if roster.get(k))
    return values


async def _scrub_audit(database: Database, cipher: FieldCipher, ids: list[str], personal: set[str]) -> int:
    audit = database.db["audit_log"]
    scrubbed = 0
    for application_id in ids:
        ref = erasure_ref(cipher, application_id)
        entries = [e async for e in audit.find({"target.application_id": application_id}, {"target": 1})]
        for entry in entries:
            target = {k: v for k, v in (entry.get("target") or {}).items() if k in AUDIT_KEEP}
            target["application_ref"] = ref
            await audit.update_one({"_id": entry["_id"]}, {"$set": {"target": target, "erased": True}})
            scrubbed += 1
        # Audit searches by the application's id keep the search, naming the application by its hash.
        searches = {"action": "audit.search", "target.query.application_id": application_id}
        for entry in [e async for e in audit.find(searches, {"target": 1})]:
            target = dict(entry.get("target") or {})
            target["query"] = {**(target.get("query") or {}), "application_id": ref}
            await audit.update_one({"_id": entry["_id"]}, {"$set": {"target": target, "erased": True}})
            scrubbed += 1
        # Refused attempts name the application only in the path they asked for.
        paths = {"target.path": {"$regex": re.escape(f"/applications/{application_id}")}}
        for entry in [e async for e in audit.find(paths, {"target": 1})]:
            target = dict(entry.get("target") or {})
            target["path"] = str(target.get("path", "")).replace(application_id, ref)
            await audit.update_one({"_id": entry["_id"]}, {"$set": {"target": target, "erased": True}})
            scrubbed += 1
    if personal:
        query = {"action": "student.search", "target.query": {"$in": sorted(personal)}}
        entries = [e async for e in audit.find(query, {"target": 1})]
        for entry in entries:
            target = {**(entry.get("target") or {}), "query": "[erased]"}
            await audit.update_one({"_id": entry["_id"]}, {"$set": {"target": target, "erased": True}})
            scrubbed += 1
    return scrubbed


async def _scrub_batches(database: Database, cipher: FieldCipher, ids: list[str]) -> int:
    """Delivery batches name their applications: an erased one is named by its hash there too."""
    batches = database.db["delivery_batches"]
    refs = {i: erasure_ref(cipher, i) for i in ids}
    scrubbed = 0
    # $elemMatch: nx-27017 answers nothing for a dotted path into an array with $in.
    refused_match = {"refused": {"$elemMatch": {"application_id": {"$in": ids}}}}
    query = {"$or": [{"application_ids": {"$in": ids}}, refused_match]}
    for batch in [b async for b in batches.find(query, {"application_ids": 1, "refused": 1, "version": 1})]:
        for _ in range(8):  # rewritten whole under the batch's version (marks and downloads race with it)
            members = [refs.get(i, i) for i in batch.get("application_ids") or []]
            refused = [
                {**r, "application_id": refs.get(str(r.get("application_id")), r.get("application_id"))}
                for r in batch.get("refused") or []
                if isinstance(r, Mapping)
            ]
            written = await batches.update_one(
                {"_id": batch["_id"], "version": batch.get("version")},
                {"$set": {"application_ids": members, "refused": refused}, "$inc": {"version": 1}},
            )
            if written.modified_count == 1:
                scrubbed += 1
                break
            fresh = await batches.find_one(
                {"_id": batch["_id"]}, {"application_ids": 1, "refused": 1, "version": 1}
            )
            if fresh is None:
                break
            batch = fresh
    return scrubbed


async def _strip_payment_notifications(database: Database, out_trade_nos: list[str]) -> int:
    notifications = database.db["payment_notifications"]
    stripped = 0
    docs = [d async for d in notifications.find({"out_trade_no": {"$in": out_trade_nos}}, {"resource": 1})]
    for doc in docs:
        try:
            resource = json.loads(doc.get("resource") or "{}")
        except (TypeError, ValueError):
            resource = {}
        kept = {k: resource[k] for k in PAYMENT_RESOURCE_KEEP if isinstance(resource, dict) and k in resource}
        await notifications.update_one(
            {"_id": doc["_id"]}, {"$set": {"resource": json.dumps(kept, ensure_ascii=False), "erased": True}}
        )
        stripped += 1
    return stripped


async def erase_application(
    database: Database,
    blobs: BlobStore,
    cipher: FieldCipher,
    application_id: str,
    *,
    reason: str,
    operator_id: str,
    now: Clock = utcnow,
) -> ErasureResult | None:
    """Erase the student behind `application_id`; None when no such application was ever known.

    Raises ErasureRefused("application_in_flight") while a worker's answer is pending."""
    db = database.db
    application = await db["applications"].find_one({"_id": application_id})
    if application is None:
        existing = await find_erasure(database, cipher, application_id)
        return ErasureResult(record=existing, already_erased=True) if existing else None
    applications = await _related_applications(database, application)
    for doc in [application, *applications]:
        photos = doc.get("photos") or {}
        photo_in_flight = any(
            isinstance(p, Mapping) and p.get("status") == IN_FLIGHT_PHOTO_STATUS for p in photos.values()
        )
        if doc.get("state") in IN_FLIGHT_STATES or int(doc.get(PENDING_FIELD) or 0) > 0 or photo_in_flight:
            raise ErasureRefused("application_in_flight", str(doc.get("state")))
    ids = sorted(doc["_id"] for doc in applications)
    ref = erasure_ref(cipher, application_id)
    started = now()
    existing = await db["erasures"].find_one({"_id": ref})
    # Every order of every ledger: accounting keeps each out_trade_no ever issued, paid or not.
    orders = [o for doc in applications for o in (accounting_order(x) for x in ledger_orders(doc)) if o]
    # Written first: a crash part-way leaves a record saying so, and the next run finishes the work.
    # Replaced whole (nx-27017 hands back a datetime $set into an existing document as text).
    record: Document = {
        "_id": ref,
        "status": "erasing",
        "school_code": application.get("school_code"),
        "requested_at": (existing or {}).get("requested_at") or started,
        "operator_id": operator_id,
        "reason": reason,
        "orders": orders,
        "related_refs": [erasure_ref(cipher, i) for i in ids if i != application_id],
    }
    await db["erasures"].replace_one({"_id": ref}, record, upsert=True)

    student_id = next((doc.get("student_id") for doc in applications if doc.get("student_id")), None)
    roster = await db["students"].find_one({"_id": student_id}) if student_id else None
    personal = _personal_values(applications, roster)
    counts: dict[str, int] = {"applications": len(ids), "blobs": 0}
    # The student's accounts and sessions first: nothing can act for the student while the rest goes.
    openids = {str(doc["owner_openid"]) for doc in applications if doc.get("owner_openid")}
    if student_id:
        binding = await db["bindings"].find_one({"_id": student_id})
        if binding and binding.get("openid"):
            openids.add(str(binding["openid"]))
        async for user in db["users"].find({"student_id": student_id}, {"_id": 1}):
            openids.add(str(user["_id"]))
        counts["bindings"] = (await db["bindings"].delete_many({"_id": student_id})).deleted_count
        # The admission photo's descriptor matching stored (biometric: services/matching/descriptors.py).
        counts["admission_descriptors"] = (
            await db["admission_descriptors"].delete_many({"_id": student_id})
        ).deleted_count
    else:
        counts["admission_descriptors"] = 0
        counts["bindings"] = 0
    accounts = sorted(openids)
    counts["sessions"] = (await db["sessions"].delete_many({"openid": {"$in": accounts}})).deleted_count
    counts["users"] = (await db["users"].delete_many({"_id": {"$in": accounts}})).deleted_count
    for doc in applications:
        counts["blobs"] += await delete_blobs(blobs, await application_blob_ids(database, doc))
    for name in WORKER_COLLECTIONS:
        counts[name] = (await db[name].delete_many({"application_id": {"$in": ids}})).deleted_count
    counts["review_leases"] = (await db["review_leases"].delete_many({"_id": {"$in": ids}})).deleted_count
    counts["delivery_batches_scrubbed"] = await _scrub_batches(database, cipher, ids)
    counts["payment_notifications_stripped"] = await _strip_payment_notifications(
        database, [str(o["out_trade_no"]) for o in orders if o.get("out_trade_no")]
    )
    counts["audit_entries_scrubbed"] = await _scrub_audit(database, cipher, ids, personal)
    # Payment anomalies stay for accounting, without the application they point at.
    scrubbed = await db["payment_anomalies"].update_many(
        {"application_id": {"$in": ids}}, {"$set": {"application_id": None, "erased": True}}
    )
    counts["payment_anomalies_scrubbed"] = scrubbed.modified_count

    # Last: while the application exists, a repeated request redoes every step above.
    counts["applications_deleted"] = (
        await db["applications"].delete_many({"_id": {"$in": ids}})
    ).deleted_count

    record.update(status="erased", completed_at=now(), counts=counts)
    await db["erasures"].replace_one({"_id": ref}, record)
    log.info("application erased", erasure_ref=ref, **counts)
    return ErasureResult(record=record, already_erased=False, openids=accounts)
