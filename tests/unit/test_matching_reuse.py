"""The admission-photo reuse check (services/matching/reuse.py): the decision on a labelled set of real
package faces, the rules on their own, the stored face print, and what the gateway makes of the outcome.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import numpy as np
import pytest

from services.gateway.applications import State
from services.gateway.domain import submissions
from services.gateway.domain.application import Application
from services.matching.compare import FaceRules, PhotoReading, compare_photos, read_photo
from services.matching.config import MatchingSettings
from services.matching.descriptors import DEVELOPMENT_KEYS, seal, unseal
from services.matching.engines import FaceEngine, engine_for
from services.matching.messages import REASON_MESSAGES
from services.matching.reuse import (
    REUSE_MAX_GAIN,
    SIMILAR_MIN_SCORE,
    THUMB,
    FacePrint,
    face_print,
    judge,
)
from shared.events import MatchScored
from shared.keyring import FieldCipher
from tests.support import reuse_sets

RULES = FaceRules()
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@functools.cache
def engine() -> FaceEngine:
    return engine_for(MatchingSettings(matching_engine="dlib"))


@functools.cache
def outcomes() -> list[tuple[reuse_sets.Case, str | None, float | None, bool, str | None]]:
    """(case, verdict, descriptor score, passed, reason) for a bounded labelled set: three people, two demo photos."""
    eng = engine()
    admissions: dict[bytes, PhotoReading] = {}
    rows = []
    for case in reuse_sets.labelled(people=3, demo_variants=2):
        if case.admission not in admissions:
            with eng.lock:
                admissions[case.admission] = read_photo(eng, case.admission, RULES)
        result = compare_photos(
            eng, case.photo, None, pass_mark=80.0, rules=RULES, photo_eyes=case.eyes,
            admission=admissions[case.admission], check_reuse=True,
        )  # fmt: skip
        assert result.reuse is not None, case.name
        verdict = result.reuse.verdict
        rows.append((case, verdict, result.reuse.score, result.passed, result.reason))
    return rows


def test_the_labelled_set_has_every_kind():
    labels = [case.label for case, *_ in outcomes()]
    assert labels.count("reused") == 30  # 3 admission photos × (9 edits + the canvas)
    assert labels.count("different") >= 4 and labels.count("demo") == 2


def test_no_other_person_and_no_demo_photo_is_refused():
    for case, verdict, score, passed, reason in outcomes():
        if case.label == "different":
            assert verdict is None and reason is None, case.name
            assert score is not None and score < SIMILAR_MIN_SCORE, case.name
        if case.label == "demo":
            # The same package frame re-lit: near-identical face, different pixels. Flagged, and it
            # still passes the comparison, so the demo journey reaches the review.
            assert verdict == "similar" and reason is None and passed, case.name


def test_the_admission_photo_again_is_refused_or_at_least_flagged():
    reused = [row for row in outcomes() if row[0].label == "reused"]
    refused = [row for row in reused if row[1] == "reused"]
    for case, verdict, score, passed, reason in reused:
        assert verdict in ("reused", "similar"), case.name  # never silently passed
        if verdict == "reused":
            # Refused before the verdict: however high the descriptor score, it does not pass.
            assert reason == "admission_photo_reused" and not passed and score is not None
    assert len(refused) / len(reused) >= 0.9  # recall on this subset (all ten people: bench/RESULTS.md)
    names = {case.name for case, *_ in refused}
    assert "demo_admission: on the canvas" in names and "group0: JPEG q25" in names


def flat(value: int, *, colour: tuple[int, int, int] = (180, 140, 120)) -> FacePrint:
    thumb = np.empty((THUMB, THUMB, 3), dtype=np.uint8)
    thumb[:] = colour
    thumb[:, : THUMB // 2] //= 2  # some structure
    return FacePrint(phash=value, thumb=thumb)


def test_the_rules_need_both_pixels_and_descriptor():
    same = flat(0xF0F0)
    assert judge(same, flat(0xF0F0), 97.0).verdict == "reused"
    assert judge(same, flat(0xF0F0), SIMILAR_MIN_SCORE - 0.01).verdict is None  # a hash alone is no proof
    assert judge(same, flat(0xF0F0 ^ 0xFFFFFF), 97.0).verdict == "similar"  # 24 bits apart
    relit = flat(0xF0F0, colour=(int(180 * (1 + 2 * REUSE_MAX_GAIN)), 140, 120))
    assert judge(same, relit, 97.0).verdict == "similar"  # the same frame with its colours edited
    # No descriptors or no face print: nothing to say.
    assert judge(None, same, 97.0).verdict == "similar"
    assert judge(same, same, None).verdict is None
    evidence = judge(same, flat(0xF0F0), 97.0).as_dict()
    assert evidence == {
        "verdict": "reused", "hamming": 0, "structure": 0.0, "gain": 0.0, "balance": 0.0, "score": 97.0
    }  # fmt: skip
    warmer = flat(0xF0F0, colour=(183, 140, 118))  # within the gain, outside the red/blue balance
    assert judge(same, warmer, 97.0).verdict == "similar"


def test_a_face_print_is_deterministic_and_sized():
    chip = np.random.default_rng(1).integers(0, 255, (150, 150, 3), dtype=np.uint8)
    a, b = face_print(chip), face_print(chip.copy())
    assert a.phash == b.phash and a.hamming(b) == 0 and a.thumb.shape == (THUMB, THUMB, 3)
    assert 0 <= a.phash < 2**64


def test_the_stored_admission_reading_keeps_the_face_print_and_an_older_one_has_none():
    cipher = FieldCipher.from_config(DEVELOPMENT_KEYS, variable="MATCHING_DATA_KEYS")
    fp = flat(0x1234_5678_9ABC_DEF0)
    reading = PhotoReading(
        faces_found=1, face_width_px=120, embedding=np.ones(128, np.float32), face_print=fp
    )
    back = unseal(cipher, "s1", "b1", "m", seal(cipher, "s1", "b1", "m", reading))
    assert back.face_print is not None and back.face_print.phash == fp.phash
    assert np.array_equal(back.face_print.thumb, fp.thumb)
    older = PhotoReading(faces_found=1, face_width_px=120, embedding=np.ones(128, np.float32))
    # Read back without one: the worker then reads the admission photo again (handlers.py).
    assert unseal(cipher, "s1", "b1", "m", seal(cipher, "s1", "b1", "m", older)).face_print is None


def submitted() -> Application:
    return Application.from_doc(
        {
            "_id": "a1",
            "version": 3,
            "state": str(State.SUBMITTED),
            "owner_openid": "o1",
            "student_id": "10487:2021001",
            "submission": {"submission_id": "s", "photo_id": "p1", "submitted_at": T0},
        }
    )


def test_a_refused_reuse_fails_the_match_with_the_students_reason_and_no_registrar():
    message = REASON_MESSAGES["admission_photo_reused"]
    result = MatchScored(
        photo_id="p1", student_id="10487:2021001", engine="dlib", score=0.0, passed=False,
        reason="admission_photo_reused", message=message,
    )  # fmt: skip
    change = submissions.apply_match(submitted(), result, T0)
    assert change.set["state"] == "match_failed"
    assert change.set["last_failure"]["code"] == "admission_photo_reused"
    assert change.set["last_failure"]["message"] == message and "录取照片相同" in message


def test_a_flag_is_stored_with_the_match_for_the_reviewer():
    result = MatchScored(
        photo_id="p1", student_id="10487:2021001", engine="dlib", score=97.5, passed=True,
        flags=["admission_photo_similar"],
    )  # fmt: skip
    change = submissions.apply_match(submitted(), result, T0)
    assert change.set["state"] == "in_review"
    assert change.set["match"]["flags"] == ["admission_photo_similar"]
    with pytest.raises(ValueError):
        MatchScored.model_validate({**result.model_dump(), "flags": ["made_up"]})


@pytest.mark.parametrize(
    "printed",
    [
        {"phash": "not-hex", "thumb": ""},
        {"phash": "00", "thumb": "AAAA"},  # a thumbnail of the wrong size
        {"phash": "00", "thumb": "!!"},  # not base64
        {"thumb": "AAAA"},  # no hash
        "a string",
    ],
)
def test_a_stored_face_print_that_is_not_one_is_refused(printed):
    import json

    cipher = FieldCipher.from_config(DEVELOPMENT_KEYS, variable="MATCHING_DATA_KEYS")
    embedding = seal(cipher, "s1", "b1", "m", PhotoReading(faces_found=1, embedding=np.ones(128, np.float32)))
    body = json.loads(cipher.decrypt(embedding, context="admission_descriptor|s1|b1|m"))
    body["face_print"] = printed
    token = cipher.encrypt(json.dumps(body), context="admission_descriptor|s1|b1|m")
    # DescriptorStore.get treats these as absent and the photo is read again.
    with pytest.raises((ValueError, KeyError, TypeError)):
        unseal(cipher, "s1", "b1", "m", token)
