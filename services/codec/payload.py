"""The decrypted CHSI record and the rules for comparing it with what the student typed.

The plaintext is compact UTF-8 JSON keyed by short pinyin abbreviations (``xm`` = 姓名, ...),
as dense QR payloads are; the long field names are accepted too. Under an
unauthenticated cipher (SM4-CBC) a wrong key can still unpad by chance and yield
garbage, so *any* plaintext that is not a valid record is a :class:`DecryptionFailed`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.codec.cipher import CodeCipher, DecryptionFailed

__all__ = [
    "ChsiRecord",
    "decode_record",
    "encode_record",
    "id_last4",
    "mismatched_fields",
    "normalise_typed_id_last4",
    "parse_record",
]

#: Larger than any QR payload; stops pathological input before JSON parsing.
MAX_PLAINTEXT_BYTES = 4096

_Required = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Optional = Annotated[str, StringConstraints(max_length=200)]
_WS = re.compile(r"\s+")


class ChsiRecord(BaseModel):
    """One 图像采集码 record; strict so a number or null in the JSON is rejected, not coerced."""

    model_config = ConfigDict(
        frozen=True, strict=True, extra="ignore", validate_by_alias=True, validate_by_name=True
    )

    chsi_id: _Required = Field(alias="id")
    name: _Required = Field(alias="xm")  # 姓名
    student_number: _Optional = Field(alias="xh")  # 学号
    # 证件号码 with stars: "4201**********123X", "**************2(3)"
    id_masked: _Required = Field(alias="zjhm")
    school_code: _Optional = Field(alias="yxdm")  # 院校代码
    school_name: _Optional = Field(alias="yxmc")  # 院校名称
    education_category: _Optional = Field(alias="xllb")  # 学历类别
    level: _Optional = Field(alias="cc")  # 层次
    department: _Optional = Field(alias="fy")  # 分院 (many schools have none)
    class_name: _Optional = Field(alias="bh")  # 班号


def parse_record(plaintext: bytes) -> ChsiRecord:
    """Validate decrypted bytes; garbage from a wrong key fails here as DecryptionFailed."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise DecryptionFailed("plaintext too long to be a CHSI record")
    try:
        return ChsiRecord.model_validate_json(plaintext)
    except ValidationError as exc:
        raise DecryptionFailed("plaintext is not a valid CHSI record") from exc


def encode_record(record: ChsiRecord, cipher: CodeCipher) -> str:
    """The QR text for a record (tests, benchmark, sandbox); compact UTF-8 JSON like the real codes."""
    return cipher.encrypt(record.model_dump_json(by_alias=True).encode("utf-8"))


def decode_record(text: str, cipher: CodeCipher) -> ChsiRecord:
    """QR text → record; raises NotChsiCode or DecryptionFailed."""
    return parse_record(cipher.decrypt(text))


def id_last4(id_masked: str) -> str:
    """What CHSI calls '证件号后4位': everything after the last star, brackets included.

    Seed rule: "请直接输入学信网图像采集码上'证件号码'星(*)号后面的字符即可，如果有括号也包含在内"
    (``01002(3)`` → ``2(3)``), so it is not always four characters. Without stars, the last 4.
    """
    value = id_masked.strip()
    if "*" in value:
        return value.rsplit("*", 1)[1]
    return value[-4:]


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def normalise_typed_id_last4(value: str) -> str:
    """Phone keyboards give full-width brackets and lower-case x; IDs never contain spaces."""
    return _WS.sub("", unicodedata.normalize("NFKC", value)).upper()


def mismatched_fields(record: ChsiRecord, *, name: str, student_number: str, id_last4: str) -> list[str]:
    """Names of the typed fields that differ from the record.

    Exact after trimming and NFKC (full-width digits/brackets match), never fuzzy:
    one different character is a mismatch, and ``2(3)`` is not ``23``.
    """
    expected_tail = _id_tail(record.id_masked)
    mismatched: list[str] = []
    if _nfkc(name) != _nfkc(record.name):
        mismatched.append("name")
    if _nfkc(student_number) != _nfkc(record.student_number):
        mismatched.append("student_number")
    typed_tail = normalise_typed_id_last4(id_last4)
    if not typed_tail or typed_tail != normalise_typed_id_last4(expected_tail):
        mismatched.append("id_last4")  # an empty answer never matches, even an all-star record
    return mismatched


def _id_tail(id_masked: str) -> str:
    # Module-level alias: the keyword argument of mismatched_fields shadows id_last4().
    return id_last4(id_masked)
