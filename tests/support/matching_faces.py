"""Real faces for the matching tests, all from installed packages, and images derived from them.

- insightface's sample group photo (`data/images/t1.jpg`, six people) and its Tom Hanks crop, read as
  files from the wheel (the package is installed without its dependencies, see pyproject.toml);
- scikit-image's astronaut (Eileen Collins).
Each face is cut from its photo with a margin and enlarged to an ID-photo-like face size.
"""

from __future__ import annotations

import functools
import importlib.util
import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageEnhance

RGB = NDArray[np.uint8]

# The six faces of t1.jpg (x, y, width) as dlib's detector frames them on the full photo, left to right.
GROUP_FACES = (
    (65, 284, 105),
    (275, 179, 88),
    (452, 300, 126),
    (734, 365, 104),
    (883, 89, 105),
    (1114, 284, 104),
)
ASTRONAUT_FACE = (179, 83, 88)


def insightface_images() -> Path:
    spec = importlib.util.find_spec("insightface")
    assert spec is not None and spec.submodule_search_locations, "insightface (dev, --no-deps) is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images"


@functools.cache
def group_photo() -> RGB:
    return np.asarray(Image.open(insightface_images() / "t1.jpg").convert("RGB"))


@functools.cache
def astronaut() -> RGB:
    import skimage.data

    return np.asarray(skimage.data.astronaut(), dtype=np.uint8)


@functools.cache
def tom_hanks() -> RGB:
    """A 112 × 112 aligned face crop; enlarged so its face is ID-photo sized."""
    image = Image.open(insightface_images() / "Tom_Hanks_54745.png").convert("RGB")
    return np.asarray(image.resize((336, 336), Image.Resampling.LANCZOS))


def portrait(photo: RGB, face: tuple[int, int, int], *, face_px: int = 200) -> RGB:
    """A 3:4 portrait around one face (margin as on an ID photo), scaled so the face is `face_px` wide."""
    x, y, w = face
    cx, cy = x + w / 2, y + w / 2
    half_w, half_h = 1.0 * w, 1.33 * w
    box = (round(cx - half_w), round(cy - half_h * 0.9), round(cx + half_w), round(cy + half_h * 1.1))
    image = Image.fromarray(photo).crop(box)  # outside the photo is filled black, like a padded scan
    scale = face_px / w
    return np.asarray(
        image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    )


def people() -> dict[str, RGB]:
    """Eight different people: the six of the group photo, the astronaut and Tom Hanks."""
    faces = {f"group{i}": portrait(group_photo(), face) for i, face in enumerate(GROUP_FACES)}
    faces["astronaut"] = portrait(astronaut(), ASTRONAUT_FACE)
    faces["tom_hanks"] = tom_hanks()
    return faces


def jpeg(image: RGB, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(image: RGB) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def variants(image: RGB) -> dict[str, bytes]:
    """The same face as a student's re-submissions would show it."""
    pil = Image.fromarray(image)
    return {
        "re-encoded (JPEG q35)": jpeg(image, 35),
        "resized to 70 %": jpeg(np.asarray(pil.resize((round(pil.width * 0.7), round(pil.height * 0.7))))),
        "resized to 160 %": jpeg(np.asarray(pil.resize((round(pil.width * 1.6), round(pil.height * 1.6))))),
        "brightened 35 %": jpeg(np.asarray(ImageEnhance.Brightness(pil).enhance(1.35))),
        "rotated 6 degrees": jpeg(
            np.asarray(pil.rotate(6, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)))
        ),
        "rotated -6 degrees": jpeg(
            np.asarray(pil.rotate(-6, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)))
        ),
    }


def side_by_side(*images: RGB) -> RGB:
    height = max(i.shape[0] for i in images)
    canvas = Image.new("RGB", (sum(i.shape[1] for i in images), height), (128, 128, 128))
    x = 0
    for image in images:
        canvas.paste(Image.fromarray(image), (x, 0))
        x += image.shape[1]
    return np.asarray(canvas)


def tiny_face() -> RGB:
    """A 640 × 480 photo whose one face is about 48 px wide: found, but too small to compare."""
    small = portrait(astronaut(), ASTRONAUT_FACE, face_px=48)
    canvas = Image.new("RGB", (640, 480), (110, 160, 200))
    canvas.paste(Image.fromarray(small), (300, 200))
    return np.asarray(canvas)


def no_face() -> RGB:
    """A real photo without a person: scikit-image's cat."""
    import skimage.data

    return np.asarray(skimage.data.chelsea(), dtype=np.uint8)


def truncated_jpeg() -> bytes:
    data = jpeg(portrait(astronaut(), ASTRONAUT_FACE))
    return data[: len(data) // 2]
