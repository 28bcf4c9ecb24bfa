"""The CHSI record: parsing decrypted bytes, and comparing it with what the student typed."""

from __future__ import annotations

import json
import random

import pytest

from services.codec.cipher import AesGcmCipher, CodeCipher, DecryptionFailed, Sm4CbcCipher
from services.codec.payload import (
    ChsiRecord,
    decode_record,
    encode_record,
    id_last4,
    mismatched_fields,
    normalise_typed_id_last4,
    parse_record,
)

RECORD = ChsiRecord(
    chsi_id="c3f1e2d4a5b69788",
    name="赵小明",
    student_number="2110216052",
    id_masked="**************2(3)",
    school_code="10487",
    school_name="华中科技大学",
    education_category="普通本专科",
    level="专科",
    department="临床医学院",
    class_name="口腔医学16班",
)
CIPHERS: list[CodeCipher] = [AesGcmCipher(bytes(range(32))), Sm4CbcCipher(bytes(range(16)))]
OTHER: list[CodeCipher] = [AesGcmCipher(bytes(range(1, 33))), Sm4CbcCipher(bytes(range(1, 17)))]


@pytest.mark.parametrize("cipher", CIPHERS, ids=lambda c: c.algorithm)
def test_record_round_trip(cipher: CodeCipher) -> None:
    text = encode_record(RECORD, cipher)
    assert 250 <= len(text) <= 400  # as dense as a real 图像采集码
    assert decode_record(text, cipher) == RECORD


def test_wire_json_uses_short_keys_and_utf8() -> None:
    plaintext = AesGcmCipher(bytes(range(32))).decrypt(encode_record(RECORD, CIPHERS[0]))
    wire = json.loads(plaintext)
    assert wire["xm"] == "赵小明"
    assert wire["zjhm"] == "**************2(3)"
    assert "赵小明".encode() in plaintext  # not \\u-escaped: keeps the QR small
    assert RECORD.model_dump()["name"] == "赵小明"  # Python side keeps readable names


def test_long_field_names_are_accepted_too() -> None:
    assert parse_record(RECORD.model_dump_json().encode()) == RECORD


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x8f\x01\xfe garbage from a wrong key",
        b"[1, 2, 3]",
        b'{"xm": "\xe8\xb5\xb5"}',  # JSON but missing fields
        json.dumps({**RECORD.model_dump(by_alias=True), "xh": 2110216052}).encode(),  # number, not str
        json.dumps({**RECORD.model_dump(by_alias=True), "xm": ""}).encode(),  # empty name
        json.dumps({**RECORD.model_dump(by_alias=True), "xm": None}).encode(),
        b"{" + b" " * 5000 + b"}",  # too long for a QR payload
    ],
)
def test_anything_but_a_record_is_a_decryption_failure(plaintext: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        parse_record(plaintext)


@pytest.mark.parametrize(("cipher", "other"), list(zip(CIPHERS, OTHER, strict=True)), ids=["aes", "sm4"])
def test_other_key_always_fails_as_decryption_failed(cipher: CodeCipher, other: CodeCipher) -> None:
    texts = [encode_record(RECORD, other) for _ in range(20)]
    for text in texts:
        with pytest.raises(DecryptionFailed):
            decode_record(text, cipher)


def test_sm4_wrong_key_garbage_that_unpads_is_still_rejected() -> None:
    # Under CBC a wrong key yields valid PKCS7 padding ~1/256 of the time; parsing must catch it.
    rng = random.Random(0)
    encryptor = Sm4CbcCipher(bytes(range(1, 17)), random_bytes=rng.randbytes)
    decryptor = Sm4CbcCipher(bytes(range(16)))
    for _ in range(5000):
        text = encode_record(RECORD, encryptor)
        try:
            garbage = decryptor.decrypt(text)
        except DecryptionFailed:
            continue
        break
    else:
        pytest.fail("no wrong-key text with valid padding found")
    assert garbage != RECORD.model_dump_json(by_alias=True).encode()
    with pytest.raises(DecryptionFailed):
        parse_record(garbage)


@pytest.mark.parametrize(
    ("id_masked", "tail"),
    [
        ("**************2(3)", "2(3)"),  # the seed rule's example: brackets included
        ("4201**********123X", "123X"),
        ("**************0123", "0123"),
        ("01002(3)", "2(3)"),  # no stars: the last four characters
        ("110101199001011234", "1234"),
        (" 4201**********123X ", "123X"),
    ],
)
def test_id_last4(id_masked: str, tail: str) -> None:
    assert id_last4(id_masked) == tail


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [("２（３）", "2(3)"), (" 123x ", "123X"), ("2 (3)", "2(3)"), ("１２３Ｘ", "123X")],
)
def test_normalise_typed_id_last4(typed: str, normalised: str) -> None:
    assert normalise_typed_id_last4(typed) == normalised


def claim(**overrides: str) -> dict[str, str]:
    return {"name": "赵小明", "student_number": "2110216052", "id_last4": "2(3)", **overrides}


def test_exact_claim_matches() -> None:
    assert mismatched_fields(RECORD, **claim()) == []


def test_full_width_and_whitespace_still_match() -> None:
    typed = claim(name=" 赵小明 ", student_number="２１１０２１６０５２", id_last4="２（３）")
    assert mismatched_fields(RECORD, **typed) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name": "赵小敏"}, ["name"]),  # one character differs
        ({"name": "赵小"}, ["name"]),
        ({"student_number": "2110216053"}, ["student_number"]),
        ({"id_last4": "23"}, ["id_last4"]),  # brackets are part of it
        ({"id_last4": "2(4)"}, ["id_last4"]),
        ({"id_last4": ""}, ["id_last4"]),
        (
            {"name": "赵晓明", "student_number": "211021605", "id_last4": "0123"},
            ["name", "student_number", "id_last4"],
        ),
    ],
)
def test_one_character_off_is_a_mismatch(overrides: dict[str, str], expected: list[str]) -> None:
    assert mismatched_fields(RECORD, **claim(**overrides)) == expected


def test_mainland_id_tail_with_lower_case_x() -> None:
    record = RECORD.model_copy(update={"id_masked": "4201**********123X"})
    assert mismatched_fields(record, **claim(id_last4="123x")) == []
    assert mismatched_fields(record, **claim(id_last4="1234")) == ["id_last4"]
