"""Each service subscribes a handler to every event class its queue is bound to, typed by class."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.codec.cipher import cipher_from_config
from services.codec.config import CodecSettings
from services.codec.handlers import CodecHandlers
from services.gateway.handlers import GatewayHandlers
from services.imaging.config import ImagingSettings
from services.imaging.handlers import ImagingHandlers
from services.matching.config import MatchingSettings
from services.matching.handlers import MatchingHandlers
from services.notify.config import NotifySettings
from services.notify.handlers import NotifyHandlers
from shared.blobs import BlobStore
from shared.bus import Subscription
from shared.config import Settings
from shared.db import Database
from shared.events import CodeScanned, PhotoSubmitted
from shared.topology import CONSUMERS, event_types
from tests.conftest import CIPHER_KEY

NOTHING: Any = None  # collaborators subscription() never touches


def subscriptions() -> dict[str, Subscription]:
    database = Database(Settings(mongo_url="mongodb://127.0.0.1:1/?directConnection=true"))
    blobs = BlobStore(database)
    codec = CodecSettings(codec_cipher_key=CIPHER_KEY)
    pool: Any = SimpleNamespace(size=1)
    return {
        "codec": CodecHandlers(
            database, blobs, codec, cipher_from_config("aes-256-gcm", CIPHER_KEY)
        ).subscription(),
        "imaging": ImagingHandlers(database, blobs, ImagingSettings(), pool).subscription(),
        "matching": MatchingHandlers(database, blobs, MatchingSettings(), NOTHING).subscription(),
        "notify": NotifyHandlers(database, NotifySettings(), NOTHING).subscription(),
        "gateway": GatewayHandlers(database, NOTHING, NOTHING, NOTHING).subscription(),
    }


def test_every_routed_event_class_has_a_handler() -> None:
    subs = subscriptions()
    assert set(subs) == set(CONSUMERS)
    for consumer, sub in subs.items():
        assert sub.missing() == [], consumer
        assert set(sub.handlers) == set(event_types(consumer)), consumer


def test_handlers_idempotent_by_construction_take_no_claim_and_the_others_do() -> None:
    subs = subscriptions()
    # Notify too: WeChat has no idempotency key, and its notifications record is the claim (docs/notify.md).
    for consumer in ("codec", "imaging", "matching", "notify"):
        assert all(not subs[consumer].claims(t) for t in subs[consumer].handlers), consumer
    claimed = {t for t in subs["gateway"].handlers if subs["gateway"].claims(t)}
    assert claimed == {"code.decoded.v1", "code.rejected.v1"}  # binding and merging: more than one write


def test_a_class_the_consumer_is_not_bound_to_is_refused() -> None:
    with pytest.raises(ValueError, match="does not consume PhotoSubmitted"):
        Subscription("codec").on(PhotoSubmitted)
    assert Subscription("codec").on(CodeScanned) is not None
