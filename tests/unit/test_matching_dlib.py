"""The dlib engine on real faces: same person ≥ 80, different people < 80, bad photos with stable codes.

Faces come from installed packages only (tests/support/matching_faces.py). Each photo's embedding is
computed once per module through the same path a comparison takes (decode, detect, align, embed).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from services.matching.admission import check_admission_photo
from services.matching.compare import FaceRules, PhotoReading, compare_photos, read_photo
from services.matching.config import MatchingSettings
from services.matching.engines import DlibEngine, FaceEngine, engine_for
from tests.support import matching_faces as faces

RULES = FaceRules()


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    engine = engine_for(MatchingSettings())
    assert isinstance(engine, DlibEngine)
    return engine


@pytest.fixture(scope="module")
def people(engine: FaceEngine) -> dict[str, PhotoReading]:
    readings = {name: read_photo(engine, faces.jpeg(image), RULES) for name, image in faces.people().items()}
    for name, reading in readings.items():
        assert reading.problem is None and reading.faces_found == 1, (name, reading)
    return readings


def score(engine: FaceEngine, a: PhotoReading, b: PhotoReading) -> float:
    assert a.embedding is not None and b.embedding is not None
    return engine.scale.score(engine.compare(a.embedding, b.embedding))


def test_the_same_person_scores_at_least_80(engine: FaceEngine, people: dict[str, PhotoReading]) -> None:
    scores = {}
    for name, image in faces.people().items():
        for variant, data in faces.variants(image).items():
            reading = read_photo(engine, data, RULES)
            assert reading.problem is None, (name, variant, reading.problem)
            scores[(name, variant)] = score(engine, people[name], reading)
    low = {pair: s for pair, s in scores.items() if s < 80}
    assert not low, low
    assert len(scores) == 8 * 6


def test_different_people_score_below_80(engine: FaceEngine, people: dict[str, PhotoReading]) -> None:
    scores = {(a, b): score(engine, people[a], people[b]) for a, b in itertools.combinations(people, 2)}
    high = {pair: s for pair, s in scores.items() if s >= 80}
    assert not high, high
    assert len(scores) == 28


def test_a_full_comparison_reports_score_timings_and_faces(engine: FaceEngine) -> None:
    astronaut = faces.people()["astronaut"]
    result = compare_photos(
        engine,
        faces.variants(astronaut)["brightened 35 %"],
        faces.png(astronaut),
        pass_mark=80,
        rules=RULES,
    )
    assert result.reason is None and result.passed and result.score is not None and result.score >= 80
    assert result.photo.faces_found == result.admission_photo.faces_found == 1
    assert {"decode", "detect", "align", "embed", "total"} <= set(result.timings_ms)
    assert result.engine == "dlib" and result.model.startswith("dlib_face_recognition_resnet_model_v1@")
    # The school's own pass mark decides `passed`; the score itself does not move.
    strict = compare_photos(engine, faces.jpeg(astronaut), faces.png(astronaut), pass_mark=100.0, rules=RULES)
    assert strict.score is not None and strict.score < 100 and not strict.passed


@pytest.mark.parametrize(
    ("label", "make", "code", "faces_found"),
    [
        ("no face (a cat)", lambda: faces.jpeg(faces.no_face()), "no_face", 0),
        ("blank image", lambda: faces.jpeg(np.full((640, 480, 3), 200, dtype=np.uint8)), "no_face", 0),
        (
            "two faces",
            lambda: faces.jpeg(faces.side_by_side(faces.people()["group0"], faces.people()["astronaut"])),
            "multiple_faces",
            2,
        ),
        ("tiny face", lambda: faces.jpeg(faces.tiny_face()), "face_too_small", 1),
        ("truncated JPEG", faces.truncated_jpeg, "unreadable", None),
        ("not an image", lambda: b"%PDF-1.7 not a photo", "unreadable", None),
        ("empty file", lambda: b"", "unreadable", None),
    ],
)
def test_bad_photos_get_stable_codes(
    engine: FaceEngine, label: str, make: object, code: str, faces_found: int | None
) -> None:
    assert callable(make)
    data = make()
    good = faces.jpeg(faces.people()["astronaut"])
    as_photo = compare_photos(engine, data, good, pass_mark=80, rules=RULES)
    assert (as_photo.reason, as_photo.score, as_photo.passed) == (f"photo_{code}", None, False), label
    assert as_photo.photo.faces_found == faces_found, label
    as_admission = compare_photos(engine, good, data, pass_mark=80, rules=RULES)
    assert as_admission.reason == f"admission_photo_{code}", label
    check = check_admission_photo(data)
    assert (check.ok, check.reason, check.code, check.faces_found) == (False, code, code, faces_found), label
    assert check.message, label  # Chinese, for the operator who imports the roster


def test_missing_and_oversized_photos(engine: FaceEngine) -> None:
    good = faces.jpeg(faces.people()["astronaut"])
    assert compare_photos(engine, good, None, pass_mark=80, rules=RULES).reason == "admission_photo_missing"
    assert compare_photos(engine, None, good, pass_mark=80, rules=RULES).reason == "photo_missing"
    small_limit = replace(RULES, max_pixels=100 * 100)
    assert (
        compare_photos(engine, good, good, pass_mark=80, rules=small_limit).reason
        == "admission_photo_too_large"
    )


def test_the_admission_check_accepts_a_good_photo_and_loads_the_engine_once(engine: FaceEngine) -> None:
    data = faces.jpeg(faces.people()["group2"])
    first = check_admission_photo(data)
    assert (first.ok, first.faces_found, first.reason, first.message, first.engine) == (
        True,
        1,
        None,
        None,
        "dlib",
    )
    assert first.face_width_px is not None and first.face_width_px >= 150
    # Same settings, same engine object: the models were loaded once for the process.
    assert engine_for(MatchingSettings()) is engine
    again = [check_admission_photo(data) for _ in range(3)]
    assert all(c.ok for c in again)


def test_a_photo_standardised_by_the_imaging_service_matches_its_original(
    engine: FaceEngine, people: dict[str, PhotoReading]
) -> None:
    """Seed steps 8-11 in order: the imaging service's 480 × 640 output against the original face."""
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import default_pool

    sources = {"astronaut": (faces.astronaut(), faces.ASTRONAUT_FACE)} | {
        f"group{i}": (faces.group_photo(), box) for i, box in enumerate(faces.GROUP_FACES)
    }
    standardised = {}
    with default_pool().borrow() as models:
        for name, (photo, box) in sources.items():
            # A larger crop than the tests' portraits: the imaging service wants phone-sized photos.
            report = check_photo(
                faces.jpeg(faces.portrait(photo, box, face_px=300)), models, standard=PhotoStandard()
            )
            if (
                report.jpeg is not None
            ):  # placement may fail on a tilted face; the quality verdict does not matter
                standardised[name] = report.jpeg
    assert len(standardised) >= 5, sorted(standardised)
    for name, jpeg in standardised.items():
        reading = read_photo(engine, jpeg, RULES)
        assert reading.problem is None, (name, reading.problem)
        assert score(engine, reading, people[name]) >= 80, name
        for other in people:
            if other != name:
                assert score(engine, reading, people[other]) < 80, (name, other)
