"""The CHSI stand-in: the sandbox's POST /sandbox/chsi/codes and `python -m sandbox.wechat.chsi`.

A minted code must be what the codec accepts: its PNG decodes (the codec's own cascade) to the QR text,
and the text decrypts with the configured key to the student's record with the ID tail after the stars.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.wechat.chsi import CodeRequest, main, mint
from services.codec.decode import decode_image
from services.codec.payload import decode_record, id_last4
from tests.conftest import CIPHER_KEY
from tests.support.codes import CIPHER
from tests.support.wechat import running_sandbox, shared_keyset

STUDENT = {"name": "赵小明", "student_number": "2110216052", "id_last4": "2(3)", "school_code": "10487"}


async def _post(url: str, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with http.post(f"{url}/sandbox/chsi/codes", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_minted_code_decodes_and_decrypts_to_the_student() -> None:
    async with running_sandbox(shared_keyset(), chsi_cipher=CIPHER) as sandbox:
        status, answer = await _post(sandbox.url, {**STUDENT, "class_name": "2021级口腔医学16班"})
    assert status == 201, answer
    png = base64.b64decode(answer["png_base64"])
    assert png.startswith(b"\x89PNG")
    assert decode_image(png).texts == (answer["qr_text"],)
    record = decode_record(answer["qr_text"], CIPHER)
    assert (record.name, record.student_number, record.school_code) == ("赵小明", "2110216052", "10487")
    assert id_last4(record.id_masked) == "2(3)" and record.class_name == "2021级口腔医学16班"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({**STUDENT, "name": ""}, "name"),
        ({k: v for k, v in STUDENT.items() if k != "school_code"}, "school_code"),
        ({**STUDENT, "id_last4": "x" * 9}, "id_last4"),
        ({**STUDENT, "name": "赵" * 51}, "name"),
        ({**STUDENT, "admin": True}, "admin"),
        ({**STUDENT, "scale": 1000}, "scale"),
        ({**STUDENT, "student_number": 2110216052}, "student_number"),
    ],
)
async def test_malformed_students_are_refused_by_field(body: dict[str, Any], why: str) -> None:
    async with running_sandbox(shared_keyset(), chsi_cipher=CIPHER) as sandbox:
        status, answer = await _post(sandbox.url, body)
    assert status == 400 and why in answer["error"], answer


async def test_not_json_and_no_key() -> None:
    async with running_sandbox(shared_keyset(), chsi_cipher=CIPHER) as sandbox:
        assert (await _post(sandbox.url, None, raw=b"\xff not json"))[0] == 400
        assert (await _post(sandbox.url, None, raw=b"[1, 2]"))[0] == 400
    async with running_sandbox(shared_keyset()) as sandbox:
        status, answer = await _post(sandbox.url, STUDENT)
    assert status == 409 and "CODEC_CIPHER_KEY" in answer["error"]


def test_each_mint_is_fresh_but_the_same_student() -> None:
    """AES-GCM takes a new nonce each time, as CHSI's codes differ per download; the record is the same."""
    first, second = (mint(CodeRequest.model_validate(STUDENT), CIPHER) for _ in range(2))
    assert first.qr_text != second.qr_text
    assert decode_record(first.qr_text, CIPHER) == decode_record(second.qr_text, CIPHER)


def test_cli_writes_the_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEC_CIPHER_KEY", CIPHER_KEY)
    out = tmp_path / "code.png"
    argv = ["--name", "钱小红", "--student-number", "2110216053", "--id-last4", "1234", "--png", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert decode_image(out.read_bytes()).texts == (printed["qr_text"],)
    assert decode_record(printed["qr_text"], CIPHER).name == "钱小红"
    monkeypatch.setenv("CODEC_CIPHER_KEY", "not base64!")
    assert main(argv) == 2
    assert "bad CHSI key" in capsys.readouterr().err
    assert main([*argv[:-2], "--school-code", ""]) == 2
