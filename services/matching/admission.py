"""The admission-photo check the roster import calls, so a bad admission photo is caught at import.

``check_admission_photo(data)`` finds the faces with the same engine and rules as the comparison,
so a photo that passes here is one the comparison can use. The engine loads on the first call and
stays loaded for the process; a check is detection only (no embedding): tens of milliseconds for an
ID-sized photo with dlib. It is CPU-bound: from async code call it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from services.matching.compare import FaceRules, PhotoReading, locate
from services.matching.config import MatchingSettings
from services.matching.engines import engine_for
from services.matching.messages import ADMISSION_CHECK_MESSAGES
from services.matching.photos import PhotoProblem, Problem


@dataclass(frozen=True)
class AdmissionPhotoCheck:
    """`ok` with exactly one usable face; otherwise `reason` (stable code) and `message` (Chinese)."""

    ok: bool
    faces_found: int | None  # None when the file could not be read as an image
    reason: Problem | None
    message: str | None
    face_width_px: int | None
    engine: str
    ms: float

    @property
    def code(self) -> Problem | None:
        """The same as `reason` (the name the roster import reads)."""
        return self.reason


@functools.cache
def _default_settings() -> MatchingSettings:
    return MatchingSettings()


def check_admission_photo(data: bytes, settings: MatchingSettings | None = None) -> AdmissionPhotoCheck:
    """Reasons: `unreadable`, `too_large`, `no_face`, `multiple_faces`, `face_too_small`.

    Settings default to the MATCHING_* environment of the calling process (engine, face rules).
    """
    settings = settings or _default_settings()
    engine = engine_for(settings)
    started = time.perf_counter()
    reading = PhotoReading()
    try:
        with engine.lock:
            locate(engine, data, FaceRules.from_settings(settings), reading)
    except PhotoProblem as problem:
        return AdmissionPhotoCheck(
            ok=False,
            faces_found=reading.faces_found,
            reason=problem.code,
            message=ADMISSION_CHECK_MESSAGES[problem.code],
            face_width_px=reading.face_width_px,
            engine=engine.name,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return AdmissionPhotoCheck(
        ok=True,
        faces_found=reading.faces_found,
        reason=None,
        message=None,
        face_width_px=reading.face_width_px,
        engine=engine.name,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
