"""One photo from upload bytes to a verdict and, when it can be placed, the standardised JPEG.

Pure computation (no I/O, no event loop): the worker runs it in a thread, the CLI and the benchmark
call it directly. The order: load safely → analyse (models once) → measures on the face → placement
→ render and recolour → measures on the canvas → encode.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from services.imaging.config import PhotoStandard
from services.imaging.load import Photo, PhotoError, open_photo
from services.imaging.preprocess import IRIS_LEFT, IRIS_RIGHT, Analysis, FaceModels, analyse, apply_affine
from services.imaging.quality import (
    ALBUM_MEASURES,
    ANALYSIS_MEASURES,
    CANVAS_MEASURES,
    Canvas,
    Measure,
    face_count,
    measured_head_top,
    placement_failed,
)
from services.imaging.standardize import encode_jpeg, place, render

Source = Literal["camera", "album"]


@dataclass(frozen=True)
class Limits:
    """What the loader accepts (ImagingSettings in the worker, defaults in the CLI)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 240


@dataclass
class Report:
    """The verdict on one photo. ``jpeg`` is set whenever the photo could be placed, even if it failed."""

    ok: bool
    measures: list[Measure] = field(default_factory=list)
    error: str | None = None  # a load error code (PhotoError); then there are no measures
    geometry: dict[str, Any] | None = None
    jpeg: bytes | None = None
    ms: float = 0.0

    @property
    def reasons(self) -> list[str]:
        """Stable codes of what refuses the photo, most fundamental first."""
        if self.error is not None:
            return [self.error]
        return [m.reason for m in self.measures if m.refuses and m.reason is not None]

    @property
    def flags(self) -> list[str]:
        """Codes of advisory failures: the photo is not refused for them, the reviewer sees them."""
        return [m.reason for m in self.measures if m.advisory and m.reason is not None]


def _analyse_at_needed_resolution(
    photo: Photo, models: FaceModels, standard: PhotoStandard, limits: Limits
) -> tuple[Photo, Analysis]:
    analysis = analyse(
        photo,
        models,
        min_confidence=standard.face_min_confidence,
        second_face_min_ratio=standard.second_face_min_ratio,
    )
    if photo.reduction == 1 or analysis.landmarks is None or analysis.face_width <= 0:
        return photo, analysis
    # DCT-reduced decode: if the face would have to be enlarged to reach the smallest width the
    # placement may choose, decode again at the scale it needs.
    needed = (standard.face_width_min_px + standard.placement_margin_px) / analysis.face_width
    if needed <= 1.0:
        return photo, analysis
    reduction = max(1, photo.reduction >> max(1, math.ceil(math.log2(needed))))
    finer = open_photo(
        photo.data,
        max_bytes=limits.max_bytes,
        max_pixels=limits.max_pixels,
        min_side=limits.min_side,
        reduction=reduction,
    )
    return finer, analyse(
        finer,
        models,
        min_confidence=standard.face_min_confidence,
        second_face_min_ratio=standard.second_face_min_ratio,
    )


def check_photo(
    data: bytes,
    models: FaceModels,
    *,
    standard: PhotoStandard,
    source: Source = "camera",
    limits: Limits | None = None,
) -> Report:
    """Judge a photo against every measure and standardise it; never raises for bad input."""
    started = time.perf_counter()
    limits = limits or Limits()
    report = Report(ok=False)
    try:
        photo = open_photo(
            data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, min_side=limits.min_side
        )
        photo, analysis = _analyse_at_needed_resolution(photo, models, standard, limits)
    except PhotoError as exc:
        report.error = exc.code
        report.ms = (time.perf_counter() - started) * 1000
        return report
    report.measures.append(face_count(analysis, standard))
    if analysis.landmarks is not None:
        report.measures.extend(measure(analysis, standard) for measure in ANALYSIS_MEASURES)
        placement = place(analysis, standard)
        if placement is None:
            report.measures.append(placement_failed())
        else:
            rendered = render(analysis, placement, standard)
            canvas = Canvas.build(analysis, placement, rendered, standard)
            canvas_measures = CANVAS_MEASURES + (
                ALBUM_MEASURES if source == "album" and standard.check_album_background else ()
            )
            report.measures.extend(measure(canvas) for measure in canvas_measures)
            jpeg, quality = encode_jpeg(rendered.rgb, standard)
            report.jpeg = jpeg
            report.geometry = {
                "width_px": standard.width_px,
                "height_px": standard.height_px,
                "head_top_px": round(measured_head_top(canvas), 1),
                "eye_line_px": round(placement.eye_line, 1),
                "face_width_px": round(canvas.face_width, 1),
                "roll_corrected_deg": round(placement.roll_deg, 2),
                "scale": round(placement.scale * photo.scale, 4),
                "jpeg_quality": quality,
                "bytes": len(jpeg),
                "dpi": standard.dpi,
                # The iris centres on the output (image-left first): matching aligns its face chip from
                # them instead of detecting the face again (docs/matching.md).
                "eyes_px": sorted(
                    [round(float(x), 1), round(float(y), 1)]
                    for x, y in apply_affine(placement.matrix, analysis.landmarks[[IRIS_LEFT, IRIS_RIGHT]])
                ),
            }
    report.ok = not any(m.refuses for m in report.measures)
    report.ms = (time.perf_counter() - started) * 1000
    return report
