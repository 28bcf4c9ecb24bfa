"""The imaging CLI: JSON report, written JPEG, exit codes, print sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from tests.support import faces
from tests.support.cli import run_cli


def cli(*args: str) -> tuple[int, list[dict[str, Any]]]:
    code, lines, _ = run_cli("services.imaging.cli", *args)
    return code, lines


def test_standardize_writes_the_jpeg_and_reports(tmp_path: Path) -> None:
    source, target = tmp_path / "in.jpg", tmp_path / "out.jpg"
    source.write_bytes(faces.jpeg(faces.hopper()))
    code, [report] = cli("standardize", str(source), str(target))
    # Exit 0 and the JPEG although Grace Hopper's cap fails the headwear rule.
    assert code == 0 and report["ok"] is False and report["reasons"] == faces.HOPPER_FAILS
    assert report["error"] is None
    assert report["bytes"] == target.stat().st_size and Image.open(target).size == (480, 640)
    assert set(report["geometry"]) >= {"head_top_px", "eye_line_px", "face_width_px"}
    check = report["checks"][0]
    assert set(check) >= {"name", "passed", "value", "score", "code"} and check["code"] == "ok"
    assert report["ms"] > 0


def test_failed_checks_still_exit_zero_with_codes(tmp_path: Path) -> None:
    source = tmp_path / "blurred.jpg"
    source.write_bytes(faces.jpeg(faces.blurred(faces.hopper())))
    code, [report] = cli("check", str(source))
    # Blurred, the cap's texture is gone too (headwear is judged by texture): refused for the blur.
    assert code == 0 and report["ok"] is False and "blurry" in report["reasons"]
    refused = [c for c in report["checks"] if not c["passed"] and not c["advisory"]]
    assert [c["code"] for c in refused] == report["reasons"]
    assert "模糊" in next(c["message"] for c in refused if c["code"] == "blurry")
    flagged = [c["code"] for c in report["checks"] if c["advisory"]]
    assert flagged == report["flags"]


def test_unusable_files_exit_one(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    code, [report] = cli("check", str(text))
    assert code == 1 and report["error"] == "not_an_image"
    code, [report] = cli("check", str(tmp_path / "missing.jpg"))
    assert code == 1 and report["error"] == "unreadable_file"


def test_print_sheet(tmp_path: Path) -> None:
    source, photo, sheet = tmp_path / "in.jpg", tmp_path / "photo.jpg", tmp_path / "sheet.jpg"
    source.write_bytes(faces.jpeg(faces.hopper()))
    assert cli("standardize", str(source), str(photo))[0] == 0
    code, [result] = cli(
        "print-sheet", str(photo), str(sheet), "--name", "赵小明", "--student-number", "2020123456"
    )
    assert code == 0 and result["ok"]
    image = Image.open(sheet)
    assert image.size in ((1800, 1200), (1200, 1800)) and image.info.get("dpi") == (300, 300)


def test_print_layout_fits_the_common_sizes() -> None:
    from shared.print_sheet import PRINT_SIZES, layout

    assert layout(PRINT_SIZES["2寸"]).columns * layout(PRINT_SIZES["2寸"]).rows == 8
    assert layout(PRINT_SIZES["1寸"]).columns * layout(PRINT_SIZES["1寸"]).rows >= 9
