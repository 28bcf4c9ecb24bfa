"""Print sheets write the student's Chinese name in the margin with real glyphs, not boxes."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from shared import print_sheet
from shared.print_sheet import PRINT_SIZES, find_cjk_font, layout, render_print_sheet
from tests.support import faces

SIZE = PRINT_SIZES["2寸"]


def _margin(sheet_jpeg: bytes) -> np.ndarray:
    """Greyscale pixels of the sheet outside the photo grid (and its crop marks)."""
    grey = np.asarray(Image.open(io.BytesIO(sheet_jpeg)).convert("L"), np.int16)
    grid = layout(SIZE)
    (ox, oy), (pw, ph) = grid.origin, grid.photo_px
    mask = np.ones(grey.shape, bool)
    mask[max(0, oy - 40) : oy + grid.rows * ph + 40, max(0, ox - 40) : ox + grid.columns * pw + 40] = False
    return np.where(mask, grey, 255)


def _sheet(name: str, font: str | None = None) -> bytes:
    photo = faces.jpeg(faces.hopper())
    return render_print_sheet(photo, name=name, student_number="2020123456", size=SIZE, font_path=font)


@pytest.mark.skipif(
    find_cjk_font() is None, reason="no CJK font installed (.ci/run installs fonts-wqy-microhei)"
)
def test_a_chinese_name_renders_as_glyphs_in_the_margin() -> None:
    zhao, qian = _margin(_sheet("赵小明")), _margin(_sheet("钱小明"))
    # Ink in the margin, and different ink for different characters: missing glyphs are identical boxes.
    assert (zhao < 128).sum() > 200
    assert (np.abs(zhao - qian) > 80).sum() > 50


def test_without_a_cjk_font_the_sheet_still_prints_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(print_sheet, "_CJK_FONTS", ())
    with caplog.at_level(logging.WARNING, logger=print_sheet.__name__):
        sheet = _sheet("赵小明", font="/nonexistent/font.ttc")
    assert Image.open(io.BytesIO(sheet)).size in ((1800, 1200), (1200, 1800))
    assert any("fonts-wqy-microhei" in r.getMessage() for r in caplog.records)
    # The two names now print as the same boxes: the test above would catch a missing font.
    assert (np.abs(_margin(sheet) - _margin(_sheet("钱小明", font="/nonexistent/font.ttc"))) > 80).sum() < 50
