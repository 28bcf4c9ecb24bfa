"""The admission photo's face, read once: its descriptor stored encrypted, reused by every comparison.

A comparison used to detect, align and embed the admission photo every time (half of matching's work).
Now the first comparison of a student (or `cli precompute` right after a roster import) reads the
admission photo once and stores what it yielded in `admission_descriptors` (`_id` = student id):

- `admission_photo_blob_id`: the photo it was read from: a re-imported photo is a new blob, so the
  stored reading no longer applies and is replaced on the next comparison;
- `model`: the engine's model with its weights hash: a model change makes every stored reading stale;
- `reading`: AES-256-GCM under `MATCHING_DATA_KEYS` (shared/keyring.py; the descriptor is biometric
  data), bound to the student, the blob and the model, holding the descriptor (float32, base64), the
  face print of the reuse check (services/matching/reuse.py: 64-bit hash, 16 × 16 thumbnail of the
  inner face), the face count and width, or the problem code when the photo has no usable face. A
  reading stored before the face print existed is read again by the worker (handlers.py).

Deleted with the student by the roster purge, retention and erasure (services/gateway/retention.py,
erasure.py: the `admission_descriptors` document of each purged student). A document that does not
decrypt (a key removed from the ring) is treated as absent and recomputed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from pymongo.errors import PyMongoError

from services.matching.compare import PhotoReading
from services.matching.config import MatchingSettings
from services.matching.reuse import THUMB, FacePrint
from shared.db import Database
from shared.events import utcnow
from shared.keyring import FieldCipher, UndecryptableToken
from shared.logging import get_logger

log = get_logger(__name__)

COLLECTION = "admission_descriptors"
VARIABLE = "MATCHING_DATA_KEYS"
# Outside production only, when MATCHING_DATA_KEYS is unset (like the gateway's development key).
DEVELOPMENT_KEYS = "dev:" + base64.b64encode(b"development-matching-desc-key-32").decode()


def cipher_from_settings(settings: MatchingSettings) -> FieldCipher | None:
    """The descriptor keyring, or None (production without keys: nothing is stored)."""
    keys = settings.matching_data_keys.get_secret_value()
    if not keys.strip():
        if settings.environment == "production":
            log.warning(
                "MATCHING_DATA_KEYS not set: admission descriptors are recomputed for every comparison"
            )
            return None
        keys = DEVELOPMENT_KEYS
    return FieldCipher.from_config(keys, variable=VARIABLE)  # KeyConfigError: the worker does not start


def _context(student_id: str, blob_id: str, model: str) -> str:
    return f"admission_descriptor|{student_id}|{blob_id}|{model}"


def seal(cipher: FieldCipher, student_id: str, blob_id: str, model: str, reading: PhotoReading) -> str:
    body: dict[str, Any] = {
        "faces_found": reading.faces_found,
        "face_width_px": reading.face_width_px,
        "problem": reading.problem,
        "embedding": None
        if reading.embedding is None
        else base64.b64encode(np.asarray(reading.embedding, dtype="<f4").tobytes()).decode(),
        "face_print": None
        if reading.face_print is None
        else {
            "phash": format(reading.face_print.phash, "016x"),
            "thumb": base64.b64encode(reading.face_print.thumb.tobytes()).decode(),
        },
    }
    return cipher.encrypt(
        json.dumps(body, separators=(",", ":")), context=_context(student_id, blob_id, model)
    )


def unseal(cipher: FieldCipher, student_id: str, blob_id: str, model: str, token: str) -> PhotoReading:
    """The stored reading; raises UndecryptableToken or ValueError for anything it cannot trust."""
    body = json.loads(cipher.decrypt(token, context=_context(student_id, blob_id, model)))
    embedding = None
    if body.get("embedding") is not None:
        embedding = np.frombuffer(base64.b64decode(body["embedding"], validate=True), dtype="<f4").astype(
            np.float32
        )
    printed = body.get("face_print")
    face_print = None
    if printed is not None:
        thumb = np.frombuffer(base64.b64decode(printed["thumb"], validate=True), dtype=np.uint8)
        face_print = FacePrint(phash=int(printed["phash"], 16), thumb=thumb.reshape(THUMB, THUMB, 3).copy())
    reading = PhotoReading(
        faces_found=body.get("faces_found"),
        face_width_px=body.get("face_width_px"),
        problem=body.get("problem"),
        embedding=embedding,
        located="stored",
        face_print=face_print,
    )
    if (reading.problem is None) == (embedding is None):
        raise ValueError("a stored reading has either a descriptor or a problem")
    return reading


class DescriptorStore:
    """`admission_descriptors`: one encrypted reading per student, for one admission photo and model."""

    def __init__(self, database: Database, cipher: FieldCipher | None) -> None:
        self._docs = database.db[COLLECTION]
        self._cipher = cipher

    @property
    def enabled(self) -> bool:
        return self._cipher is not None

    async def get(self, student_id: str, blob_id: str, model: str) -> PhotoReading | None:
        if self._cipher is None:
            return None
        doc = await self._docs.find_one({"_id": student_id})
        if doc is None or doc.get("admission_photo_blob_id") != blob_id or doc.get("model") != model:
            return None
        try:
            return unseal(self._cipher, student_id, blob_id, model, str(doc.get("reading", "")))
        except (UndecryptableToken, ValueError, KeyError, TypeError) as exc:
            log.warning("stored admission descriptor unreadable, recomputing", error=type(exc).__name__)
            return None

    async def put(self, student_id: str, blob_id: str, model: str, reading: PhotoReading) -> None:
        """Store a reading of a readable admission photo (a missing blob is not stored: it may appear)."""
        if self._cipher is None or reading.problem == "missing":
            return
        token = seal(self._cipher, student_id, blob_id, model, reading)
        try:
            await self._docs.replace_one(
                {"_id": student_id},
                {
                    "_id": student_id,
                    "admission_photo_blob_id": blob_id,
                    "model": model,
                    "reading": token,
                    "key_id": self._cipher.current,
                    "computed_at": utcnow(),
                },
                upsert=True,
            )
        except PyMongoError as exc:  # a cache: the comparison stands without it
            log.warning("admission descriptor not stored", error=type(exc).__name__)
