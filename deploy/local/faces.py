"""Faces that packages ship, made into phone photos for `make demo` and `make load`: nothing doctored.

The person is scikit-image's `astronaut` (Eileen Collins, NASA's public-domain portrait): bare-headed,
frontal, on a plain studio backdrop. A phone photo is a 3:4 crop of it around her head and shoulders,
resampled to a phone-sized canvas (720×960: a phone's digital zoom does the same), so nothing on her
is painted or removed. She passes every refusing check of the real pipeline; she smiles and her hair
reaches her ears, which the standard leaves to the reviewer (advisory flags, docs/imaging.md), so the
photo is standardised and goes on to the manual review with those flags.

`student_photo(n)` varies it per student as phones and helpers do: distance (the crop, face 170-215 px
wide), a small roll of the camera (±4°), exposure and white balance, a gentle side light, sensor
noise and the JPEG quality; variant 0 is the plain one. `admission_photo()` is the roster's photo:
the same person framed tighter, cooler and a little darker, as an older capture would be, at 480×640.
There is only one photo of her in any package, so the admission photo comes from the same frame; a
copy check that compares face descriptors must allow for that in the demo (see docs/imaging.md).

No download: the file is in scikit-image's wheel. Needs numpy and OpenCV (the `imaging` extra).
"""

from __future__ import annotations

import functools
import random

import cv2
import numpy as np

# Her face in astronaut.png (512×512): centre x, centre y, width (the face detector's box).
FACE_CX, FACE_CY, FACE_W = 223, 127, 88


@functools.cache
def astronaut_bgr() -> np.ndarray:
    """The package's portrait, BGR 512×512."""
    from skimage import data

    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


def _phone_frame(
    crop_w: float, size: tuple[int, int], roll_deg: float = 0.0, dx: float = 0.0, dy: float = 0.0
) -> np.ndarray:
    """A 3:4 window ``crop_w`` source px wide around her head, rotated by ``roll_deg``, at ``size``.

    The window's top sits just above the source's top edge margin, as far up as the photo reaches.
    """
    src = astronaut_bgr()
    out_w, out_h = size
    k = out_w / crop_w
    crop_h = crop_w * out_h / out_w
    cx = FACE_CX + dx
    top = min(0.0, FACE_CY - 0.38 * crop_h) + dy
    # Source → canvas: scale k about the window's top-left, then a roll about the face centre.
    matrix = np.array([[k, 0, -k * (cx - crop_w / 2)], [0, k, -k * max(0.0, top)]])
    if roll_deg:
        face = matrix @ np.array([FACE_CX, FACE_CY, 1.0])
        rot = cv2.getRotationMatrix2D((float(face[0]), float(face[1])), roll_deg, 1.0)
        matrix = rot @ np.vstack([matrix, [0, 0, 1]])
    return cv2.warpAffine(src, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _lighting(
    image: np.ndarray, exposure: float, warmth: float, side: float, noise: float, seed: int
) -> np.ndarray:
    """Exposure, white balance (+ warmer), a linear side light (0: none) and sensor noise."""
    f = image.astype(np.float32) * exposure
    f[..., 2] *= 1 + warmth  # BGR: red up, blue down
    f[..., 0] *= 1 - warmth
    if side:
        ramp = np.linspace(1 - side, 1 + side, image.shape[1], dtype=np.float32)[None, :, None]
        f *= ramp
    if noise:
        f += np.random.default_rng(seed).normal(0, noise, f.shape).astype(np.float32)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def student_photo(variant: int = 0, size: tuple[int, int] = (720, 960)) -> bytes:
    """Her photo as a student's phone takes it; ``variant`` picks distance, roll and light (0: none)."""
    if variant == 0:
        return _jpeg(_phone_frame(384.0, size), 92)
    rnd = random.Random(variant)
    frame = _phone_frame(
        rnd.uniform(318.0, 384.0), size, rnd.uniform(-4.0, 4.0), rnd.uniform(-6, 6), rnd.uniform(-4, 0)
    )
    lit = _lighting(
        frame,
        exposure=rnd.uniform(0.88, 1.1),
        warmth=rnd.uniform(-0.04, 0.04),
        side=rnd.uniform(-0.06, 0.06),
        noise=rnd.uniform(0.0, 3.0),
        seed=variant,
    )
    return _jpeg(lit, rnd.randint(86, 94))


def admission_photo(size: tuple[int, int] = (480, 640)) -> bytes:
    """The roster's admission photo: the same person, framed tighter, cooler and darker, 480×640."""
    frame = _phone_frame(300.0, size, dy=8)
    return _jpeg(_lighting(frame, exposure=0.92, warmth=-0.05, side=0.0, noise=0.0, seed=0), 90)
