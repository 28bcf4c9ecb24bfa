"""A labelled set for the admission-photo reuse check (services/matching/reuse.py), from package faces.

- `reused` (positives): an admission photo submitted again: resized, JPEG-recompressed at several
  qualities, cropped a little, or placed on the light-blue canvas by imaging's standardiser (which also
  carries the eyes, as in production);
- `different` (negatives): another person's photo against an admission photo;
- `demo` (negatives, reported apart): deploy/local/faces.py's student photos, standardised, against its
  admission photo. They come from the same package frame as that admission photo (lighting, roll,
  noise and distance changes), so they are near-identical faces that are *not* the admission file: they
  must end `similar` (flagged for the reviewer) or pass, never `reused`.

Nothing is painted on a face: every image is a package photo, resampled, recompressed or cropped.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from services.matching.engines import Eyes
from tests.support import matching_faces as faces

if TYPE_CHECKING:
    from services.imaging.preprocess import ModelPool

Label = Literal["reused", "different", "demo"]


@dataclass(frozen=True)
class Case:
    name: str
    label: Label
    photo: bytes
    admission: bytes
    eyes: Eyes | None = None  # imaging's eyes on a standardised photo


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


@functools.cache
def grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def admission_photos(count: int | None = None) -> dict[str, bytes]:
    """Admission photos of different people (JPEG q90), the demo's own last."""
    from deploy.local import faces as demo

    people = faces.people()
    photos = {name: faces.jpeg(image) for name, image in people.items()}
    photos["grace_hopper"] = faces.jpeg(grace_hopper())
    photos["demo_admission"] = demo.admission_photo()
    names = list(photos)
    if count is not None:
        names = [*names[: count - 1], "demo_admission"]
    return {name: photos[name] for name in names}


def resubmissions(admission: bytes) -> dict[str, bytes]:
    """The admission photo re-submitted: resized, recompressed, cropped (not yet standardised)."""
    image = Image.open(io.BytesIO(admission)).convert("RGB")
    w, h = image.size
    out: dict[str, bytes] = {}
    for scale in (0.6, 0.8, 1.5):
        out[f"resized {round(scale * 100)} %"] = _jpeg(
            image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        )
    for quality in (85, 60, 40, 25):
        out[f"JPEG q{quality}"] = _jpeg(image, quality)
    out["cropped 5 % each side"] = _jpeg(image.crop((w // 20, h // 20, w - w // 20, h - h // 20)))
    out["cropped 8 % top-left"] = _jpeg(image.crop((w * 2 // 25, h * 2 // 25, w, h)))
    return out


def standardised(data: bytes) -> tuple[bytes, Eyes] | None:
    """Imaging's standardised photo and the eyes it carries, or None when imaging refuses to place it."""
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo

    pool = _pool()
    with pool.borrow() as models:
        report = check_photo(data, models, standard=PhotoStandard())
    if report.jpeg is None or report.geometry is None:
        return None
    (lx, ly), (rx, ry) = report.geometry["eyes_px"]
    return report.jpeg, ((float(lx), float(ly)), (float(rx), float(ry)))


@functools.cache
def _pool() -> ModelPool:
    from services.imaging.preprocess import ModelPool

    return ModelPool(1)


def labelled(people: int | None = None, demo_variants: int = 24) -> Iterator[Case]:
    """The labelled set: `people` admission photos (None: all ten), `demo_variants` demo photos."""
    from deploy.local import faces as demo

    photos = admission_photos(people)
    for name, admission in photos.items():
        for how, data in resubmissions(admission).items():
            yield Case(f"{name}: {how}", "reused", data, admission)
        placed = standardised(admission)
        if placed is not None:
            yield Case(f"{name}: on the canvas", "reused", placed[0], admission, placed[1])
    for name, admission in photos.items():
        for other, data in photos.items():
            if other != name and not {name, other} <= {"astronaut", "demo_admission"}:
                yield Case(f"{other} vs {name}", "different", data, admission)
    for variant in range(demo_variants):
        placed = standardised(demo.student_photo(variant))
        if placed is not None:
            yield Case(
                f"demo student photo {variant}", "demo", placed[0], photos["demo_admission"], placed[1]
            )
