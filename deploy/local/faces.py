"""Faces that packages ship, made into photos that meet the CHSI standard: for `make demo` and `make load`.

matplotlib's `grace_hopper.jpg` (a frontal studio portrait) meets every rule of the photo standard but
one: she wears her Navy cap (免冠 fails, `tests/support/faces.py` HOPPER_FAILS). `bare_hopper()` takes the
cap off the way the quality check sees it: the cap's pixels (inside a fixed outline of the cap in that
file, skin excluded) are repainted in grey-hair tones (neutral, slightly warm, with a little grain), so
the crown reads as grey hair. The shape stays a cap's; the point is a photo that passes the real
pipeline (`python -m services.imaging.cli check`: every check passes) and still matches her admission
photo (the same face: `python -m services.matching.cli compare`, score ≥ 80), not a convincing retouch.

`student_photo(n)` varies it per student (a small shift, brightness, JPEG quality), so every upload
has different bytes; `admission_photo()` is the roster's photo: the original portrait, cap included,
at 480×640 (what the demo has always imported).

No download: the file is in matplotlib's wheel. Needs numpy and OpenCV (the `imaging` extra).
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import cv2
import numpy as np

# The cap in grace_hopper.jpg (512×600), clockwise from its left crown: generous around the cap, the
# skin inside it is kept (see _cap_mask).
CAP_OUTLINE = [
    (168, 45), (230, 18), (300, 18), (358, 42), (362, 80), (378, 100), (376, 150), (355, 165),
    (300, 162), (250, 160), (200, 165), (158, 180), (146, 150), (150, 100), (172, 80),
]  # fmt: skip
BACKDROP = 235  # the grey the portrait is padded with to 3:4 (space above the head)


def hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@functools.cache
def hopper_bgr() -> np.ndarray:
    image = cv2.imread(str(hopper_path()))
    if image is None:
        raise FileNotFoundError(hopper_path())
    return image


def _cap_mask(image: np.ndarray) -> np.ndarray:
    """The cap: inside the outline, minus skin (pinkish, bright) and the bright blue sky behind it."""
    outline = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(outline, [np.array(CAP_OUTLINE, np.int32)], 255)
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    lum, a, b = lab[..., 0], lab[..., 1] - 128, lab[..., 2] - 128
    pinkish = ((a > 6) & (a < 40) & (b > 8) & (lum > 90)).astype(np.uint8)
    skin = cv2.morphologyEx(pinkish, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    sky = (b < -20) & (lum > 120)
    cap = np.where((outline > 0) & (skin == 0) & ~sky, 255, 0).astype(np.uint8)
    return cv2.morphologyEx(cap, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))


@functools.cache
def bare_hopper() -> np.ndarray:
    """Grace Hopper with the cap repainted as grey hair (BGR, 512×600)."""
    image = hopper_bgr()
    cap = _cap_mask(image)
    inside = cap > 0
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    grain = np.random.default_rng(3).normal(0, 6, int(inside.sum()))
    lab[..., 0][inside] = np.clip(95 + 0.45 * lab[..., 0][inside] + grain, 0, 255)
    lab[..., 1][inside] = 128 + 2  # neutral, a touch warm: the hue of grey hair, not of navy cloth
    lab[..., 2][inside] = 128 + 5
    hair = cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
    soft = cv2.GaussianBlur(cap, (0, 0), 1.5).astype(np.float32)[..., None] / 255
    return np.asarray(hair * soft + image * (1 - soft), np.uint8)


@functools.cache
def _portrait(bare: bool, size: tuple[int, int]) -> np.ndarray:
    """Padded to 3:4 with room above the head (as a phone would frame it), then scaled."""
    image = bare_hopper() if bare else hopper_bgr()
    height, width = image.shape[:2]
    canvas = np.full((round(width * 4 / 3), width, 3), BACKDROP, np.uint8)
    canvas[canvas.shape[0] - height :] = image
    return cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Moved by (dx, dy) pixels, the edges repeated into the gap (the frame keeps its size)."""
    h, w = image.shape[:2]
    padded = cv2.copyMakeBorder(image, abs(dy), abs(dy), abs(dx), abs(dx), cv2.BORDER_REPLICATE)
    top, left = abs(dy) - dy, abs(dx) - dx
    return np.ascontiguousarray(padded[top : top + h, left : left + w])


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def student_photo(variant: int = 0, size: tuple[int, int] = (720, 960)) -> bytes:
    """The bare-headed portrait as a student's camera photo; `variant` picks a shift of up to ±8 px,
    a brightness of ±6% and a JPEG quality of 86-94 (variant 0: none of them), so bytes differ."""
    if variant == 0:
        return _jpeg(_portrait(True, size), 92)
    rnd = random.Random(variant)
    image = _shifted(_portrait(True, size), rnd.randint(-8, 8), rnd.randint(-8, 8))
    image = cv2.convertScaleAbs(image, alpha=rnd.uniform(0.94, 1.06))
    return _jpeg(image, rnd.randint(86, 94))


def admission_photo(size: tuple[int, int] = (480, 640)) -> bytes:
    """The roster's admission photo: the original portrait (cap on), 480×640."""
    return _jpeg(_portrait(False, size), 92)
