"""The pieces of issue 16 that need no server: score bands, the carried eyes, the sealed descriptor, the
database command counts and the keyring's own variable name."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from services.matching.compare import PhotoReading
from services.matching.config import MatchingSettings
from services.matching.descriptors import cipher_from_settings, seal, unseal
from services.matching.engines import eyes_agree
from services.matching.handlers import _eyes
from services.matching.score import band
from shared.dbstats import collection_of, parse_metrics
from shared.events import MatchScored, PhotoGeometry
from shared.keyring import FieldCipher, KeyConfigError, UndecryptableToken

KEY = base64.b64encode(b"k" * 32).decode()


def test_bands_around_the_pass_mark() -> None:
    assert band(95.0, 80.0, 5.0) == "clear_pass"
    assert band(85.0, 80.0, 5.0) == "clear_pass"
    assert band(84.99, 80.0, 5.0) == "borderline"
    assert band(80.0, 80.0, 5.0) == "borderline"
    assert band(75.0, 80.0, 5.0) == "borderline"
    assert band(74.99, 80.0, 5.0) == "clear_fail"
    assert band(90.0, 90.0, 0.0) == "clear_pass" and band(89.99, 90.0, 0.0) == "clear_fail"
    data: dict[str, Any] = {
        "photo_id": "p",
        "student_id": "s",
        "score": 83.0,
        "passed": True,
        "engine": "dlib",
    }
    assert MatchScored.model_validate(data).band is None  # an older producer
    assert MatchScored.model_validate({**data, "band": "borderline"}).band == "borderline"
    with pytest.raises(ValidationError):
        MatchScored.model_validate({**data, "band": "probably"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([[190.5, 264], [290, 264.5]], ((190.5, 264.0), (290.0, 264.5))),
        (((1, 2), (3, 4)), ((1.0, 2.0), (3.0, 4.0))),
        ([[290, 264], [190, 264]], None),  # right eye first
        ([[190, 264]], None),
        ([[190, 264], [290, 264], [1, 1]], None),
        ([["a", 1], [2, 3]], None),
        ([["nan", 1], [2, 3]], None),
        ([["inf", 1], [2, 3]], None),
        ([[-5, 1], [2, 3]], None),
        ([[1e9, 1], [2e9, 3]], None),
        ("eyes", None),
        (None, None),
        (42, None),
        ({"a": 1, "b": 2}, None),
    ],
)
def test_carried_eyes_are_read_strictly(value: Any, expected: Any) -> None:
    assert _eyes(value) == expected


def test_eyes_agree_within_a_fifth_of_their_distance() -> None:
    expected = ((100.0, 200.0), (200.0, 200.0))
    assert eyes_agree(((110.0, 205.0), (195.0, 190.0)), expected)
    assert not eyes_agree(((121.0, 200.0), (200.0, 200.0)), expected)
    assert not eyes_agree(expected, ((100.0, 200.0), (104.0, 200.0)))  # eyes 4 px apart: no face


def test_photo_geometry_carries_two_eyes_or_none() -> None:
    base: dict[str, Any] = {
        "width_px": 480,
        "height_px": 640,
        "head_top_px": 70,
        "eye_line_px": 264,
        "face_width_px": 209,
        "roll_corrected_deg": 0,
        "scale": 1,
        "jpeg_quality": 85,
        "bytes": 40000,
        "dpi": 300,
    }
    assert PhotoGeometry.model_validate(base).eyes_px is None
    assert PhotoGeometry.model_validate({**base, "eyes_px": [[1, 2], [3, 4]]}).eyes_px == [(1, 2), (3, 4)]
    with pytest.raises(ValidationError):
        PhotoGeometry.model_validate({**base, "eyes_px": [[1, 2]]})


def test_a_sealed_reading_opens_only_for_its_student_photo_and_model() -> None:
    cipher = FieldCipher.from_config(f"m1:{KEY}", variable="MATCHING_DATA_KEYS")
    vector = np.linspace(-0.3, 0.3, 128, dtype=np.float32)
    reading = PhotoReading(faces_found=1, face_width_px=210, embedding=vector)
    token = seal(cipher, "s1", "blob1", "model@abc", reading)
    assert token.startswith("v1:m1:") and "0.3" not in token
    back = unseal(cipher, "s1", "blob1", "model@abc", token)
    assert back.located == "stored" and back.faces_found == 1 and back.face_width_px == 210
    assert back.embedding is not None and np.array_equal(back.embedding, vector)
    for student, blob, model in (
        ("s2", "blob1", "model@abc"),
        ("s1", "blob2", "model@abc"),
        ("s1", "blob1", "m@x"),
    ):
        with pytest.raises(UndecryptableToken):
            unseal(cipher, student, blob, model, token)
    problem = seal(cipher, "s1", "blob1", "m", PhotoReading(faces_found=0, problem="no_face"))
    assert unseal(cipher, "s1", "blob1", "m", problem).problem == "no_face"
    # Neither a descriptor nor a problem, or both: not trusted.
    odd = cipher.encrypt('{"problem": null, "embedding": null}', context="admission_descriptor|s1|b|m")
    with pytest.raises(ValueError):
        unseal(cipher, "s1", "b", "m", odd)


def test_the_descriptor_keyring_names_its_own_variable() -> None:
    with pytest.raises(KeyConfigError, match="MATCHING_DATA_KEYS entry 1"):
        cipher_from_settings(MatchingSettings(matching_data_keys=SecretStr("no-colon")))
    with pytest.raises(KeyConfigError, match="MATCHING_DATA_KEYS key 'a'"):
        cipher_from_settings(MatchingSettings(matching_data_keys=SecretStr("a:c2hvcnQ=")))
    rotated = cipher_from_settings(MatchingSettings(matching_data_keys=SecretStr(f"new:{KEY},old:{KEY}")))
    assert rotated is not None and rotated.current == "new" and rotated.key_ids == ["new", "old"]
    assert cipher_from_settings(MatchingSettings()) is not None  # development: a development key
    assert cipher_from_settings(MatchingSettings(environment="production")) is None  # nothing stored


def test_database_commands_are_counted_by_collection() -> None:
    assert collection_of("find", {"find": "applications", "filter": {}}) == "applications"
    assert collection_of("getMore", {"getMore": 12345, "collection": "blobs.chunks"}) == "blobs.chunks"
    assert collection_of("ping", {"ping": 1}) == ""
    page = "\n".join(
        [
            "# HELP db_commands_total Database commands",
            'db_commands_total{collection="applications",command="find",op="read"} 12.0',
            'db_commands_total{collection="applications",command="findAndModify",op="write"} 3.0',
            'db_commands_total{collection="applications",command="aggregate",op="read"} 1.0',
            'db_commands_created{collection="applications",command="find",op="read"} 1.7e9',
            'db_commands_total{collection="matches",command="insert",op="write"} 2.0',
        ]
    )
    assert parse_metrics(page) == {
        "applications": {"read": 13.0, "write": 3.0},
        "matches": {"read": 0.0, "write": 2.0},
    }
