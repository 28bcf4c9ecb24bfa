"""Print sheets: a student's standardised photo tiled on 6-inch photo paper, with cutting guides.

The printing step (after approval) prints each student's photos on one sheet, glued to adhesive
backing and mailed to the registrar with the student's name and number in the margin so the sheets
can be sorted. Photos of the school's print size (1寸, 2寸, ...) abut each other with hairline cut
lines between them and crop marks in the margin; the sheet is a 300 dpi JPEG.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MM_PER_INCH = 25.4
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrintSize:
    """A photo size in millimetres (width × height)."""

    name: str
    width_mm: float
    height_mm: float


PRINT_SIZES: dict[str, PrintSize] = {
    "1寸": PrintSize("1寸", 25, 35),
    "小2寸": PrintSize("小2寸", 33, 48),
    "2寸": PrintSize("2寸", 35, 49),
    # The standard's own 480×640 at 300 dpi: 40.6 × 54.2 mm.
    "chsi": PrintSize("chsi", 40.64, 54.19),
}

# Fonts that can write Chinese names, looked up in this order after ``--font``. The first is the
# Debian/Ubuntu package fonts-wqy-microhei, which .ci/run installs and the container image needs
# (docs/imaging.md); the others are common alternatives already on many machines.
_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


def _px(mm: float, dpi: int) -> int:
    return round(mm / MM_PER_INCH * dpi)


def find_cjk_font(configured: str | None = None) -> str | None:
    """A font file that can render Chinese, or None (then names print as empty boxes)."""
    if configured and not Path(configured).is_file():
        log.warning("print font %s not found; looking for an installed CJK font", configured)
    for candidate in (configured, *_CJK_FONTS):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _cjk_font(font_path: str | None, size: int) -> ImageFont.FreeTypeFont | None:
    """The CJK font at ``size``, or None with a warning: the sheet still prints, the name as boxes."""
    if font_path is None:
        log.warning("no CJK font installed (apt install fonts-wqy-microhei): Chinese names print as boxes")
        return None
    try:
        return ImageFont.truetype(font_path, size)
    except OSError:
        log.warning("CJK font %s could not be loaded: Chinese names print as boxes", font_path)
        return None


@dataclass(frozen=True)
class SheetLayout:
    columns: int
    rows: int
    photo_px: tuple[int, int]
    sheet_px: tuple[int, int]
    origin: tuple[int, int]


def layout(
    size: PrintSize, *, paper_in: tuple[float, float] = (6, 4), dpi: int = 300, margin_mm: float = 1.5
) -> SheetLayout:
    """The grid with the most photos on the paper (either orientation), centred, inside the margin."""
    pw, ph = _px(size.width_mm, dpi), _px(size.height_mm, dpi)
    margin = _px(margin_mm, dpi)
    best: SheetLayout | None = None
    for w_in, h_in in (paper_in, paper_in[::-1]):
        sw, sh = round(w_in * dpi), round(h_in * dpi)
        cols, rows = (sw - 2 * margin) // pw, (sh - 2 * margin) // ph
        if cols < 1 or rows < 1:
            continue
        candidate = SheetLayout(
            cols, rows, (pw, ph), (sw, sh), ((sw - cols * pw) // 2, (sh - rows * ph) // 2)
        )
        if best is None or cols * rows > best.columns * best.rows:
            best = candidate
    if best is None:
        raise ValueError(f"a {size.name} photo does not fit on {paper_in[0]}x{paper_in[1]} in paper")
    return best


def render_print_sheet(
    photo_jpeg: bytes,
    *,
    name: str,
    student_number: str,
    size: PrintSize,
    paper_in: tuple[float, float] = (6, 4),
    dpi: int = 300,
    font_path: str | None = None,
) -> bytes:
    """The sheet as a 300 dpi JPEG: photos tiled edge to edge, cut lines, crop marks, a caption."""
    sheet_layout = layout(size, paper_in=paper_in, dpi=dpi)
    sheet = Image.new("RGB", sheet_layout.sheet_px, "white")
    with Image.open(io.BytesIO(photo_jpeg)) as original:
        photo = original.convert("RGB")
    pw, ph = sheet_layout.photo_px
    # Fill the print size without distortion: scale to cover, centre-crop the excess (a few px).
    scale = max(pw / photo.width, ph / photo.height)
    resized = photo.resize(
        (math.ceil(photo.width * scale), math.ceil(photo.height * scale)), Image.Resampling.LANCZOS
    )
    left, top = (resized.width - pw) // 2, (resized.height - ph) // 2
    tile = resized.crop((left, top, left + pw, top + ph))
    ox, oy = sheet_layout.origin
    for r in range(sheet_layout.rows):
        for c in range(sheet_layout.columns):
            sheet.paste(tile, (ox + c * pw, oy + r * ph))
    draw = ImageDraw.Draw(sheet)
    grid_w, grid_h = sheet_layout.columns * pw, sheet_layout.rows * ph
    # Crop marks fill the margin around the grid (at most 2.5 mm), clear of the photos by 2 px.
    mark = min(_px(2.5, dpi), max(ox, oy))
    grey = (150, 150, 150)
    # Hairline cut lines between photos and crop marks outside the grid, on every cut.
    for c in range(sheet_layout.columns + 1):
        x = ox + c * pw
        draw.line([(x, oy), (x, oy + grid_h)], fill=(225, 225, 225), width=1)
        draw.line([(x, max(0, oy - mark)), (x, oy - 2)], fill=grey, width=2)
        draw.line([(x, oy + grid_h + 2), (x, oy + grid_h + mark)], fill=grey, width=2)
    for r in range(sheet_layout.rows + 1):
        y = oy + r * ph
        draw.line([(ox, y), (ox + grid_w, y)], fill=(225, 225, 225), width=1)
        draw.line([(max(0, ox - mark), y), (ox - 2, y)], fill=grey, width=2)
        draw.line([(ox + grid_w + 2, y), (ox + grid_w + mark, y)], fill=grey, width=2)
    _caption(sheet, sheet_layout, f"{name}  {student_number}  {size.name}", find_cjk_font(font_path))
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=95, dpi=(dpi, dpi), subsampling=0)
    return out.getvalue()


def _latin_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data (already installed for mediapipe), else Pillow's default."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def _runs(text: str) -> list[tuple[str, bool]]:
    """Split text into runs of CJK and non-CJK characters (each drawn with a font that has them)."""
    runs: list[tuple[str, bool]] = []
    for ch in text:
        cjk = ord(ch) >= 0x2E80
        if runs and runs[-1][1] == cjk:
            runs[-1] = (runs[-1][0] + ch, cjk)
        else:
            runs.append((ch, cjk))
    return runs


def _caption(sheet: Image.Image, sheet_layout: SheetLayout, text: str, font_path: str | None) -> None:
    """Write the caption in the widest free margin, turned along it when that margin is a side."""
    ox, oy = sheet_layout.origin
    size = max(14, min(36, max(ox, oy) - 8))
    latin = _latin_font(size)
    has_cjk = any(is_cjk for _, is_cjk in _runs(text))
    cjk = (_cjk_font(font_path, size) if has_cjk else None) or latin
    runs = [(run, cjk if is_cjk else latin) for run, is_cjk in _runs(text)]
    width = sum(round(font.getlength(run)) for run, font in runs) + 4
    label = Image.new("RGB", (width, size + 8), "white")
    draw = ImageDraw.Draw(label)
    x = 2.0
    for run, font in runs:
        draw.text((x, 2), run, fill=(60, 60, 60), font=font)
        x += font.getlength(run)
    if oy >= ox:  # bottom margin
        sheet.paste(
            label,
            (max(0, (sheet.width - label.width) // 2), sheet.height - oy + max(0, (oy - label.height) // 2)),
        )
    else:  # side margin, text running upwards
        turned = label.rotate(90, expand=True)
        sheet.paste(
            turned,
            (
                sheet.width - ox + max(0, (ox - turned.width) // 2),
                max(0, (sheet.height - turned.height) // 2),
            ),
        )
