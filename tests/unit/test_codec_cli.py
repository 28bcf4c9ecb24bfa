"""The decode CLI, run as a subprocess exactly as support staff would run it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import segno
from PIL import Image

from tests.support import cli

TEXT = "CHSI-CLI-TEST-学信网-0123456789"


def run_cli(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    return cli.run_cli("services.codec.cli", *args)


def write_qr(path: Path, text: str = TEXT) -> Path:
    buf = io.BytesIO()
    segno.make_qr(text, error="m").save(buf, kind="png", scale=6, border=4)
    path.write_bytes(buf.getvalue())
    return path


def test_all_files_ok_exits_zero(tmp_path: Path) -> None:
    first = write_qr(tmp_path / "first.png")
    second = write_qr(tmp_path / "second.png", "another code")
    code, lines, _ = run_cli("decode", str(first), str(second))
    assert code == 0
    assert [line["text"] for line in lines] == [TEXT, "another code"]
    assert all(line["ok"] is True and line["error"] is None for line in lines)
    assert lines[0]["file"] == str(first)
    assert lines[0]["stage"] == "zxing"
    assert isinstance(lines[0]["ms"], float)


def test_one_line_per_file_with_reason_codes(tmp_path: Path) -> None:
    good = write_qr(tmp_path / "good.png")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("学号 2110216052", encoding="utf-8")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 300), 230, dtype=np.uint8)).save(blank)
    missing = tmp_path / "missing.png"

    code, lines, _ = run_cli("decode", str(good), str(text_file), str(empty), str(blank), str(missing))
    assert code == 1
    assert len(lines) == 5
    by_file = {Path(str(line["file"])).name: line for line in lines}
    assert by_file["good.png"]["ok"] is True
    assert by_file["good.png"]["text"] == TEXT
    expected_errors = {
        "notes.txt": "not_an_image",
        "empty.jpg": "empty_file",
        "blank.png": "no_code_found",
        "missing.png": "unreadable_file",
    }
    for name, error in expected_errors.items():
        assert by_file[name]["ok"] is False
        assert by_file[name]["error"] == error
        assert by_file[name]["text"] is None
        assert by_file[name]["stage"] is None


def test_pixel_limit_flag(tmp_path: Path) -> None:
    good = write_qr(tmp_path / "good.png")
    code, lines, _ = run_cli("decode", "--max-pixels", "1000", str(good))
    assert code == 1
    assert lines[0]["error"] == "image_too_large"


def test_usage_error_without_files() -> None:
    code, lines, stderr = run_cli("decode")
    assert code == 2
    assert lines == []
    assert "FILE" in stderr
