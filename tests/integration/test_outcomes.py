"""The workers' decide-once step (shared/outcomes.py) against the real nx-27017, and the codec on it."""

from __future__ import annotations

import asyncio

import pytest

from services.codec.cipher import cipher_from_config
from services.codec.config import CodecSettings
from services.codec.handlers import CodecHandlers
from shared.blobs import BlobStore
from shared.db import Document
from shared.events import derived_id
from shared.outcomes import StoredOutcomes
from tests.conftest import CIPHER_KEY
from tests.integration.test_bus import scan_event

pytestmark = pytest.mark.slow


async def test_concurrent_deliveries_store_one_outcome_and_publish_one_id(database) -> None:
    outcomes = StoredOutcomes(database.db["codes"], producer="codec", input_event_field="scan_event_id")
    event = scan_event(1)
    decided: list[int] = []
    discarded: list[Document] = []
    both_deciding = asyncio.Barrier(2)

    def decider(n: int):
        async def decide() -> Document:
            decided.append(n)
            await both_deciding.wait()  # both copies decide before either stores
            return {"status": "rejected", "by": n}

        return decide

    async def discard(document: Document) -> None:
        discarded.append(document)

    first, second = await asyncio.gather(
        *(outcomes.decide_once("scan-1", event, decider(n), discard=discard) for n in (1, 2))
    )
    assert sorted(decided) == [1, 2]
    assert sorted([first.decided_here, second.decided_here]) == [False, True]
    assert first.document["by"] == second.document["by"]  # both publish the stored one
    assert first.event_id == second.event_id == derived_id("codec", event.id)
    assert len(discarded) == 1 and discarded[0]["by"] != first.document["by"]
    stored = await database.db["codes"].find_one({"_id": "scan-1"})
    assert stored["scan_event_id"] == event.id and stored["application_id"] == event.application_id
    assert await database.db["codes"].count_documents({}) == 1


async def test_a_redelivery_republishes_without_deciding_again(database) -> None:
    outcomes = StoredOutcomes(database.db["codes"], producer="codec", input_event_field="scan_event_id")
    event = scan_event(2)
    calls: list[int] = []

    async def decide() -> Document:
        calls.append(1)
        return {"status": "rejected"}

    first = await outcomes.decide_once("scan-2", event, decide)
    again = await outcomes.decide_once("scan-2", event, decide)
    assert calls == [1] and first.decided_here and not again.decided_here
    assert again.event_id == first.event_id


async def test_a_repeated_scan_event_is_answered_under_its_own_id_not_the_skipped_one(env, database) -> None:
    """13.4 (the codec's part): K1 → K2 → K1 republished the stored outcome under the *first* event's id,
    which the gateway had already applied and so skipped: the application waited for good. A new event
    for a decided scan now gets the stored outcome under an id derived from its own event."""
    settings = CodecSettings.model_validate({k.lower(): v for k, v in env.items()})
    codec = CodecHandlers(
        database, BlobStore(database), settings, cipher_from_config("aes-256-gcm", CIPHER_KEY)
    )
    original = scan_event(3)
    repeated = scan_event(3)  # the same scan id, a new event (the client's request repeated)
    assert repeated.id != original.id
    (first,) = await codec.on_code_scanned(original.payload(), original)
    (redelivered,) = await codec.on_code_scanned(original.payload(), original)
    (second,) = await codec.on_code_scanned(repeated.payload(), repeated)
    assert redelivered.id == first.id == derived_id("codec", original.id)
    assert second.id == derived_id("codec", repeated.id) != first.id
    assert second.data == first.data  # the same stored outcome, decided once
    assert await database.db["codes"].count_documents({}) == 1
