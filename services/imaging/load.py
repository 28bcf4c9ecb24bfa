"""Turn the bytes a student uploaded into an upright RGB image, safely and no larger than needed.

Anything can arrive here (the gateway checks album uploads, but camera uploads, redrives and the CLI
bring what they bring): text, HEIC, truncated files, decompression bombs, CMYK or greyscale JPEGs,
PNGs with transparency. Every failure is a :class:`PhotoError` with a stable code.

A 12-megapixel phone JPEG is decoded with DCT scaling (libjpeg's 1/2, 1/4, 1/8 scales through
Pillow's draft mode): the output is 480×640, so a full decode would mostly be thrown away. The
default keeps the short side ≥ 700 px (a 4000×3000 photo decodes at 1000×750, about 40% of a full
decode's time); a face too small at that scale is decoded again finer (pipeline.py).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.imagefiles import truncation

# Stable codes; the student-facing text is in messages.py.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
TRUNCATED_IMAGE = "truncated_image"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_TOO_SMALL = "image_too_small"

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
# HEIF/HEIC/AVIF: an ISO-BMFF `ftyp` box; iPhones save photos as HEIC unless told otherwise.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
_LOAD_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


class PhotoError(Exception):
    """Why the bytes cannot be judged as a photo; ``code`` is stable and goes to the student."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Photo:
    """An upright RGB image decoded at ``1/reduction`` of the stored resolution.

    ``full_size`` is the upright (width, height) of the photo as stored; coordinates in ``rgb``
    times ``reduction`` are full-resolution coordinates (up to rounding of the DCT scale).
    """

    rgb: np.ndarray
    full_size: tuple[int, int]
    reduction: int
    format: str
    mode: str
    data: bytes

    @property
    def scale(self) -> float:
        """Decoded pixels per full-resolution pixel."""
        return float(self.rgb.shape[1]) / self.full_size[0]


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _check_complete(data: bytes, fmt: str | None) -> None:
    if problem := truncation(data, fmt):
        raise PhotoError(TRUNCATED_IMAGE, problem)


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except (*_LOAD_ERRORS, KeyError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# EXIF orientation → the transpose that makes the image upright (orientation 1 needs none).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    # Orientations 5-8 swap width and height (the phone was held the other way).
    return (size[1], size[0]) if orientation >= 5 else size


def choose_reduction(width: int, height: int, min_side: int) -> int:
    """The largest DCT scale (1, 2, 4, 8) that keeps the short side at least ``min_side``."""
    reduction = 1
    while reduction < 8 and min(width, height) / (reduction * 2) >= min_side:
        reduction *= 2
    return reduction


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white and bring every mode (CMYK, L, I;16, P, ...) to RGB."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB") if img.mode != "RGB" else img


def open_photo(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    min_side: int,
    work_min_side: int = 700,
    reduction: int | None = None,
) -> Photo:
    """Decode upload bytes to an upright RGB photo; raises :class:`PhotoError`.

    The pixel count comes from the header (``Image.open`` reads no pixel data), so a bomb is refused
    before any decoding. JPEGs are decoded at the largest DCT reduction that keeps the short side at
    least ``work_min_side`` pixels, unless ``reduction`` asks for a specific one.
    """
    if not data:
        raise PhotoError(EMPTY_FILE)
    if len(data) > max_bytes:
        raise PhotoError(IMAGE_TOO_LARGE, f"{len(data)} bytes > {max_bytes}")
    if _is_heif(data):
        raise PhotoError(UNSUPPORTED_FORMAT, "HEIF/HEIC")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PhotoError(IMAGE_TOO_LARGE, "decompression bomb") from exc
    except (*_LOAD_ERRORS, TypeError) as exc:
        if _looks_like_image(data):
            raise PhotoError(TRUNCATED_IMAGE, "image header is incomplete") from exc
        raise PhotoError(NOT_AN_IMAGE) from exc
    fmt = img.format or "?"
    if fmt not in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"):
        raise PhotoError(UNSUPPORTED_FORMAT, fmt)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise PhotoError(NOT_AN_IMAGE, "no pixels")
    if width * height > max_pixels:
        raise PhotoError(IMAGE_TOO_LARGE, f"{width}x{height} > {max_pixels} pixels")
    if min(width, height) < min_side:
        raise PhotoError(IMAGE_TOO_SMALL, f"{width}x{height}, short side < {min_side}")
    _check_complete(data, fmt)
    mode = img.mode
    orientation = _orientation(img)
    if reduction is None:
        reduction = choose_reduction(width, height, work_min_side) if fmt in ("JPEG", "MPO") else 1
    try:
        if reduction > 1 and fmt in ("JPEG", "MPO"):
            # Draft picks libjpeg's DCT scale: at least the requested size, never below it.
            img.draft("RGB", (math.ceil(width / reduction), math.ceil(height / reduction)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
        upright = _to_rgb(img)
        if orientation != 1:
            upright = upright.transpose(_TRANSPOSE[orientation])
    except (*_LOAD_ERRORS, KeyError, TypeError) as exc:
        raise PhotoError(
            TRUNCATED_IMAGE, f"pixel data is incomplete or corrupt: {type(exc).__name__}"
        ) from exc
    rgb = np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))
    full = _upright_size((width, height), orientation)
    actual = max(1, round(full[0] / rgb.shape[1]))
    return Photo(rgb=rgb, full_size=full, reduction=actual, format=fmt, mode=mode, data=data)
