"""Photos the journey tests upload, and the imaging/matching results they play on the real broker."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shared.bus import Bus
from shared.config import Settings
from shared.events import (
    MatchScored,
    PhotoRejected,
    PhotoStandardized,
    QualityMeasure,
    derived_id,
    make_event,
)


def photo_jpeg(width: int = 600, height: int = 800, quality: int = 90, seed: int = 1) -> bytes:
    """A JPEG with enough texture to be a realistic size (an album upload must be 50 KB-1 MB)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


async def publish(env: dict[str, str], *events) -> None:
    bus = Bus(Settings.model_validate({k.lower(): v for k, v in env.items()}))
    await bus.connect()
    try:
        await bus.publish_many(events)
    finally:
        await bus.close()


async def standardise(env: dict[str, str], system, application_id: str, photo_id: str) -> str:
    """Play the imaging worker: store a standardised JPEG and publish photo.standardized.v1."""
    blob_id = await system.gateway.blobs.put(
        photo_jpeg(480, 640), filename=f"std-{photo_id}", content_type="image/jpeg"
    )
    measure = QualityMeasure(code="single_face", raw=1.0, score=100.0, passed=True)
    event = make_event(
        PhotoStandardized(photo_id=photo_id, standardized_blob_id=blob_id, measures=[measure]),
        application_id=application_id,
        event_id=derived_id("imaging-test", photo_id),
    )
    await publish(env, event)
    return blob_id


async def score(
    env: dict[str, str], application_id: str, photo_id: str, student_id: str, value: float, **extra
) -> None:
    """Play the matching worker: publish match.scored.v1."""
    data = {
        "photo_id": photo_id,
        "student_id": student_id,
        "score": value,
        "passed": value >= 80,
        "engine": "test",
    }
    fields = MatchScored.model_fields
    data.update({k: v for k, v in extra.items() if k in fields})
    event = make_event(MatchScored(**data), application_id=application_id)
    await publish(env, event)


async def reject(
    env: dict[str, str], application_id: str, photo_id: str, reasons: list[str], messages: list[str]
) -> None:
    """Play the imaging worker refusing a photo: publish photo.rejected.v1 with its Chinese messages."""
    measure = QualityMeasure(code=reasons[0], raw=0.0, score=0.0, passed=False)
    event = make_event(
        PhotoRejected(photo_id=photo_id, measures=[measure], reasons=reasons, messages=messages),
        application_id=application_id,
        event_id=derived_id("imaging-test-reject", photo_id),
    )
    await publish(env, event)
