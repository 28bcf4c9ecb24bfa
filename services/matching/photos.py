"""Reading a photo safely, and the problems a photo can have, each with a stable code."""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

# What can be wrong with one photo. Stable: they reach the gateway, the operators and the CLI.
Problem = Literal["missing", "unreadable", "too_large", "no_face", "multiple_faces", "face_too_small"]

RGBImage = NDArray[np.uint8]


class PhotoProblem(Exception):
    """A photo that cannot be compared; `code` says why, `faces_found` what detection saw."""

    def __init__(self, code: Problem, faces_found: int | None = None) -> None:
        super().__init__(code)
        self.code: Problem = code
        self.faces_found = faces_found


def decode_photo(data: bytes, *, max_bytes: int, max_pixels: int) -> RGBImage:
    """RGB pixels, upright (EXIF orientation applied); raises PhotoProblem for anything else."""
    if not data:
        raise PhotoProblem("unreadable")
    if len(data) > max_bytes:
        raise PhotoProblem("too_large")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on decompression bombs; we check the header size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise PhotoProblem("too_large")
            image.load()  # a truncated file fails here, not later inside a detector
    except PhotoProblem:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoProblem("unreadable") from exc
    upright: Image.Image = ImageOps.exif_transpose(image)
    if upright.mode != "RGB":
        upright = upright.convert("RGB")
    pixels: RGBImage = np.asarray(upright, dtype=np.uint8)
    if pixels.ndim != 3 or min(pixels.shape[:2]) < 16:
        raise PhotoProblem("unreadable")
    return np.ascontiguousarray(pixels)
