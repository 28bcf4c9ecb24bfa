"""Every MongoDB collection and the one service that owns it (writes it); the others only read it.

The exceptions are declared here too: shared machinery any service uses (the bus's claims, GridFS), and
the gateway's privacy jobs (retention, PIPL erasure), which remove or strip a student's data wherever it
lives (docs/operations.md). `tests/unit/test_collection_owners.py` checks the code against this table.
"""

from __future__ import annotations

from dataclasses import dataclass

# Not a service: rows written through shared/ code by every process (each its own rows).
SHARED = "shared"
# The only modules that may delete or strip (replace without the personal fields) documents of another
# service's collection, and only of the collections that name their service in `erased_by`: retention,
# PIPL erasure, and the roster import (a student's admission photo replaced or removed takes matching's
# reading of it along).
PRIVACY_JOBS = ("services.gateway.retention", "services.gateway.erasure", "services.gateway.roster")


@dataclass(frozen=True)
class Collection:
    name: str
    owner: str
    # Services whose privacy jobs (PRIVACY_JOBS) may delete or strip its documents.
    erased_by: tuple[str, ...] = ()


COLLECTIONS: dict[str, Collection] = {
    c.name: c
    for c in (
        # gateway: the aggregate and everything the API and the console keep.
        Collection("applications", "gateway"),
        Collection("users", "gateway"),
        Collection("bindings", "gateway"),
        Collection("sessions", "gateway"),
        Collection("schools", "gateway"),
        Collection("students", "gateway"),
        Collection("payment_notifications", "gateway"),
        Collection("payment_anomalies", "gateway"),
        Collection("operators", "gateway"),
        Collection("console_sessions", "gateway"),
        Collection("review_leases", "gateway"),
        Collection("audit_log", "gateway"),
        Collection("erasures", "gateway"),
        Collection("delivery_batches", "gateway"),
        # One-time set-password links for invited operators (services/gateway/console/accounts.py).
        Collection("operator_invites", "gateway"),
        # Idempotency-Key -> request fingerprint and first answer (services/gateway/request_keys.py).
        Collection("request_keys", "gateway"),
        # The workers' outcomes, one document per input.
        Collection("codes", "codec", erased_by=("gateway",)),
        Collection("photos", "imaging", erased_by=("gateway",)),
        Collection("matches", "matching", erased_by=("gateway",)),
        # The admission photos' face readings, encrypted (biometric data: docs/matching.md).
        Collection("admission_descriptors", "matching", erased_by=("gateway",)),
        Collection("notifications", "notify", erased_by=("gateway",)),
        # Shared machinery.
        Collection("processed_events", SHARED),
        Collection("blobs.files", SHARED, erased_by=("gateway",)),
        Collection("blobs.chunks", SHARED, erased_by=("gateway",)),
    )
}


def owner(name: str) -> str:
    """The owning service of collection `name`; KeyError for a collection nobody declared."""
    return COLLECTIONS[name].owner


def may_write(service: str, name: str) -> bool:
    collection = COLLECTIONS[name]
    return collection.owner in (service, SHARED)


def may_erase(module: str, name: str) -> bool:
    """True when `module` (dotted) is a privacy job of a service that may delete or strip `name`."""
    service = module.split(".")[1] if module.startswith("services.") else ""
    return module in PRIVACY_JOBS and service in COLLECTIONS[name].erased_by
