"""One comparison: each photo decoded, its one face found, aligned and embedded; then the score.

Pure computation (no I/O); call it in a thread. The admission photo is read first: a problem there is
not the student's to fix, so it is the reason reported when both photos have one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from services.matching.config import MatchingSettings
from services.matching.engines import DetectedFace, Embedding, Eyes, FaceEngine
from services.matching.photos import PhotoProblem, Problem, RGBImage, decode_photo
from services.matching.reuse import FacePrint, ReuseEvidence, face_print, judge


@dataclass(frozen=True)
class FaceRules:
    """What makes a photo usable for comparison; defaults in MatchingSettings."""

    min_face_px: int = 64
    second_face_ratio: float = 0.5
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000

    @classmethod
    def from_settings(cls, settings: MatchingSettings) -> FaceRules:
        return cls(
            min_face_px=settings.matching_min_face_px,
            second_face_ratio=settings.matching_second_face_ratio,
            max_bytes=settings.matching_max_image_bytes,
            max_pixels=settings.matching_max_pixels,
        )


@dataclass
class PhotoReading:
    """What one photo yielded; `problem` is set when it cannot take part in a comparison."""

    faces_found: int | None = None
    face_width_px: int | None = None
    problem: Problem | None = None
    embedding: Embedding | None = field(default=None, repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # How the face was found: "detected" (a scan of the whole photo), "carried" (imaging's eyes,
    # checked by a small crop), "stored" (the admission photo's descriptor read back), None (no face).
    located: str | None = None
    # The aligned face's perceptual hash and thumbnail, for the admission-photo reuse check (reuse.py).
    face_print: FacePrint | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a photo with the admission photo; `score` is None when `reason` is set."""

    engine: str
    model: str
    pass_mark: float
    photo: PhotoReading
    admission_photo: PhotoReading
    score: float | None = None
    raw: float | None = None
    ms: float = 0.0
    # The admission-photo reuse check (reuse.py): `reused` refuses, `similar` flags for the reviewer.
    reuse: ReuseEvidence | None = None

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= self.pass_mark and not self.reused

    @property
    def reused(self) -> bool:
        return self.reuse is not None and self.reuse.verdict == "reused"

    @property
    def reason(self) -> str | None:
        """`admission_photo_<problem>`, `photo_<problem>` or `admission_photo_reused` (the student
        submitted the admission photo again), or None when a score was computed."""
        if self.admission_photo.problem is not None:
            return f"admission_photo_{self.admission_photo.problem}"
        if self.photo.problem is not None:
            return f"photo_{self.photo.problem}"
        if self.reused:
            return "admission_photo_reused"
        return None

    @property
    def timings_ms(self) -> dict[str, float]:
        """Per stage, both photos added up (detection and embedding are what the benchmark splits)."""
        total: dict[str, float] = {}
        for reading in (self.photo, self.admission_photo):
            for stage, ms in reading.timings_ms.items():
                total[stage] = round(total.get(stage, 0.0) + ms, 2)
        total["total"] = round(self.ms, 2)
        return total


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


def the_face(faces: list[DetectedFace], rules: FaceRules) -> DetectedFace:
    """The one face a photo must show; raises PhotoProblem when there is none, several, or too small."""
    if not faces:
        raise PhotoProblem("no_face", 0)
    largest = faces[0]
    significant = [f for f in faces if f.width >= rules.second_face_ratio * largest.width]
    if len(significant) > 1:
        raise PhotoProblem("multiple_faces", len(faces))
    if largest.width < rules.min_face_px:
        raise PhotoProblem("face_too_small", len(faces))
    return largest


def locate(
    engine: FaceEngine, data: bytes, rules: FaceRules, reading: PhotoReading
) -> tuple[RGBImage, DetectedFace]:
    """Decode and detect, recording timings and faces on `reading`; raises PhotoProblem."""
    started = time.perf_counter()
    image = decode_photo(data, max_bytes=rules.max_bytes, max_pixels=rules.max_pixels)
    reading.timings_ms["decode"] = _ms(started)
    started = time.perf_counter()
    faces = engine.detect(image)
    reading.timings_ms["detect"] = _ms(started)
    reading.faces_found = len(faces)
    if faces:
        reading.face_width_px = round(faces[0].width)
    return image, the_face(faces, rules)


def locate_carried(
    engine: FaceEngine, data: bytes, eyes: Eyes, rules: FaceRules, reading: PhotoReading
) -> tuple[RGBImage, DetectedFace]:
    """Decode, then the face where imaging put the eyes; a whole-photo detection only when that fails."""
    started = time.perf_counter()
    image = decode_photo(data, max_bytes=rules.max_bytes, max_pixels=rules.max_pixels)
    reading.timings_ms["decode"] = _ms(started)
    started = time.perf_counter()
    face = engine.face_at(image, eyes)
    reading.timings_ms["locate"] = _ms(started)
    if face is None or face.width < rules.min_face_px:
        started = time.perf_counter()
        faces = engine.detect(image)
        reading.timings_ms["detect"] = _ms(started)
        reading.faces_found = len(faces)
        if faces:
            reading.face_width_px = round(faces[0].width)
        reading.located = "detected"
        return image, the_face(faces, rules)
    reading.faces_found = 1
    reading.face_width_px = round(face.width)
    reading.located = "carried"
    return image, face


def read_photo(
    engine: FaceEngine, data: bytes, rules: FaceRules, *, eyes: Eyes | None = None
) -> PhotoReading:
    """Everything one photo yields; never raises for a bad photo (the problem is on the reading).

    `eyes`: where imaging put them on a standardised photo; the face is then looked for there first.
    """
    reading = PhotoReading()
    try:
        if eyes is not None:
            image, face = locate_carried(engine, data, eyes, rules, reading)
        else:
            image, face = locate(engine, data, rules, reading)
            reading.located = "detected"
    except PhotoProblem as problem:
        reading.problem = problem.code
        reading.located = None
        return reading
    started = time.perf_counter()
    chip = engine.align(image, face)
    reading.timings_ms["align"] = _ms(started)
    started = time.perf_counter()
    reading.embedding = engine.embed(chip)
    reading.timings_ms["embed"] = _ms(started)
    reading.face_print = face_print(chip)
    return reading


def compare_photos(
    engine: FaceEngine,
    photo: bytes | None,
    admission_photo: bytes | None,
    *,
    pass_mark: float,
    rules: FaceRules,
    photo_eyes: Eyes | None = None,
    admission: PhotoReading | None = None,
    check_reuse: bool = False,
) -> Comparison:
    """Compare the student's photo with the admission photo; `None` bytes stand for a missing blob.

    `admission`: the admission photo's reading when it is already known (its stored descriptor); the
    bytes are then not read. `photo_eyes`: imaging's eyes on the student's standardised photo.
    `check_reuse`: refuse the admission photo submitted again (reuse.py; the worker's comparisons).
    A comparison of two arbitrary photos (the CLI, calibration, benchmarks) leaves it off.
    """
    started = time.perf_counter()
    with engine.lock:
        if admission is None:
            admission = (
                read_photo(engine, admission_photo, rules)
                if admission_photo is not None
                else PhotoReading(problem="missing")
            )
        student = (
            read_photo(engine, photo, rules, eyes=photo_eyes)
            if photo is not None
            else PhotoReading(problem="missing")
        )
        score = raw = None
        reuse = None
        if admission.embedding is not None and student.embedding is not None:
            raw = engine.compare(student.embedding, admission.embedding)
            score = engine.scale.score(raw)
            # Before the verdict: the admission photo again is refused whatever its score.
            if check_reuse:
                reuse = judge(student.face_print, admission.face_print, score)
            if reuse is not None and reuse.verdict == "reused":
                score = None
    return Comparison(
        engine=engine.name,
        model=engine.model,
        pass_mark=pass_mark,
        photo=student,
        admission_photo=admission,
        score=score,
        raw=None if raw is None else round(raw, 6),
        ms=_ms(started),
        reuse=reuse,
    )
