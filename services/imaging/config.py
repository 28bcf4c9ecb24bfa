"""Imaging settings: the CHSI photo standard, the quality thresholds, and the worker's limits.

Every rule cites the clause of 教毕指[2017]99号 (高等教育学历证书电子注册图像采集规范, "the standard"
below) that it implements; thresholds the standard states only in words ("no strong highlights") carry
our measured default and say so. All are environment variables: ``IMAGING_<FIELD>`` (upper case).
"""

from __future__ import annotations

import os

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import Settings


def _cores() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class PhotoStandard(BaseSettings):
    """The output format and the thresholds of every quality measure (defaults in code)."""

    model_config = SettingsConfigDict(env_prefix="IMAGING_", extra="ignore", frozen=True)

    # --- the output file (the standard, 图像规格) -------------------------------------------------
    # 480×640 px (W×H), 24-bit colour, 300 dpi.
    width_px: int = 480
    height_px: int = 640
    dpi: int = 300
    # JPEG with quality factor ≥ 60, "generally 20-40 KB": quality is searched so the file lands in
    # the range; bytes are never padded. A photo that cannot fill 20 KB at quality 100 stays smaller.
    jpeg_min_quality: int = Field(default=60, ge=1, le=100)
    jpeg_max_quality: int = Field(default=100, ge=1, le=100)
    file_min_bytes: int = 20 * 1024
    file_max_bytes: int = 40 * 1024
    # Background RGB(100, 197, 255), uniform, no gradient or shadow (the standard, 背景要求).
    background_rgb: tuple[int, int, int] = (100, 197, 255)

    # --- geometry (the standard, 人像位置) -------------------------------------------------------
    # Head top 50-110 px below the top edge; eye line 200-300 px; face width 180-300 px.
    head_top_min_px: int = 50
    head_top_max_px: int = 110
    eye_line_min_px: int = 200
    eye_line_max_px: int = 300
    face_width_min_px: int = 180
    face_width_max_px: int = 300
    # Where inside those ranges we aim, and how far from each limit we stay: re-measuring the written
    # JPEG moves landmarks by a few pixels, so the placement keeps this margin from every limit.
    head_top_target_px: int = 80
    eye_line_target_px: int = 250
    face_width_target_px: int = 230
    placement_margin_px: int = 8
    # Head horizontally centred (the standard: 头部居中): face centre at most this far from x = 240.
    max_centre_offset_px: float = 12.0

    # --- detection -----------------------------------------------------------------------------
    face_min_confidence: float = Field(default=0.5, gt=0, lt=1)
    # A second face counts if it is at least this fraction of the largest face's width: a photo of
    # the student only (the standard: 单人), while a tiny face on a poster far behind is ignored.
    second_face_min_ratio: float = Field(default=0.35, gt=0, le=1)

    # --- quality thresholds (the standard, 人像要求 and 光线要求) ------------------------------
    # The face must be wide enough in the original to fill ~230 px of the output without visible
    # upscaling: at most ~1.5× enlargement (ours; the standard asks for a clear photo, 清晰).
    min_face_width_source_px: float = 150.0
    # Head straight (the standard: 头部端正, 不得侧转、仰头、低头). Degrees, from the face mesh.
    max_yaw_deg: float = 12.0
    max_pitch_deg: float = 15.0
    # Roll is corrected by rotating the photo; beyond this the camera or head was too crooked to trust.
    max_roll_deg: float = 25.0
    # Shoulders level (the standard: 双肩水平) after the roll correction; degrees.
    max_shoulder_tilt_deg: float = 8.0
    # Eyes open, looking ahead (the standard: 双眼自然睁开): eyelid gap / eye width, the smaller eye.
    min_eye_openness: float = 0.14
    # Mouth closed, natural expression (the standard: 嘴巴自然闭合): lip gap / mouth width.
    max_mouth_openness: float = 0.12
    # Ears visible, not covered by hair (the standard: 双耳对称露出, 头发不得遮挡耳朵): share of skin
    # pixels next to the face outline at ear height, the worse side.
    min_ear_skin_share: float = 0.20
    # Eyebrows and eyes not covered by hair (the standard: 头发不得遮挡眉毛、眼睛): share of skin
    # pixels in the band just above the eyebrows.
    min_brow_skin_share: float = 0.45
    # Even lighting, no yin-yang face (the standard: 光线均匀, 不得有阴阳脸): darker / brighter cheek
    # luminance ratio.
    min_cheek_balance: float = 0.72
    # No under- or over-exposure (the standard: 不得过曝): mean face luminance (0-255), and the share
    # of clipped (≥ 250) face pixels.
    min_face_luminance: float = 70.0
    max_face_luminance: float = 225.0
    max_clipped_share: float = 0.05
    # Sharp (the standard: 清晰): variance of the Laplacian of the face at output scale.
    min_sharpness: float = 150.0
    # No headwear (the standard: 免冠, 不得戴帽子/头饰): share of the crown (the person between the head
    # top and the top of the forehead, away from its edge) in colours natural hair never has: a blue or
    # purple cast (CIELAB b* < 0) or green (a* < -15) at chroma ≥ 6, or a vivid colour (chroma ≥ 60).
    # Bare-headed package faces read ≤ 0.3%; Grace Hopper's navy cap 11-13% (ours).
    max_headwear_share: float = 0.04
    # No tinted glasses (the standard: 不得佩戴有色眼镜): eye-region / cheek luminance ratio.
    min_eye_luminance_ratio: float = 0.45
    # No reflective glasses (the standard: 镜片不得反光): share of near-white, colourless pixels around
    # the eyes (a catchlight in the pupil is far below this).
    max_eye_glare_share: float = 0.03
    # Clothing distinct from the background (the standard: 服装颜色应与背景色有明显区别): CIE ΔE76
    # between the median clothing colour and the background.
    min_clothing_delta_e: float = 22.0
    # A colour photo (the standard: 24 位彩色): mean chroma (CIELAB C*) of the face skin.
    min_face_chroma: float = 6.0
    # The head must not touch the top edge of the original: free rows above the head, output px.
    min_headroom_px: float = 2.0
    # Output pixels on the person that lie outside the original photo (shoulders cut off by the
    # frame are filled by repeating the edge): share of the output, at most.
    max_outside_body_share: float = 0.02
    # Album uploads must already be ID photos on light blue (the seed: 浅蓝色背景): ΔE76 to the
    # reference blue, and the spread of the background's luminance (uniform, no gradient or shadow).
    check_album_background: bool = True
    max_background_delta_e: float = 30.0
    max_background_spread: float = 18.0

    @model_validator(mode="after")
    def _targets_inside_ranges(self) -> PhotoStandard:
        for name in ("head_top", "eye_line", "face_width"):
            lo, hi, target = (getattr(self, f"{name}_{k}_px") for k in ("min", "max", "target"))
            if not lo + self.placement_margin_px <= target <= hi - self.placement_margin_px:
                raise ValueError(
                    f"IMAGING_{name.upper()}_TARGET_PX must lie inside its range with the margin"
                )
        if self.jpeg_min_quality > self.jpeg_max_quality:
            raise ValueError("IMAGING_JPEG_MIN_QUALITY must not exceed IMAGING_JPEG_MAX_QUALITY")
        return self


class ImagingSettings(Settings):
    """The worker process: the shared settings plus its own limits."""

    service_name: str = "imaging"
    http_port: int = 8182
    # CPU-bound: one message per core in flight, each on its own set of models.
    bus_prefetch: int = Field(default_factory=_cores, ge=1, le=64)
    # A photo takes well under a second; a claim outlives the slowest by far.
    bus_claim_lease_s: float = Field(default=60.0, gt=0)
    # Upload limits: bytes, and pixels from the header (a decompression bomb is refused unread).
    imaging_max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    imaging_max_pixels: int = Field(default=50_000_000, ge=10_000)
    # Shorter than this cannot hold a face wide enough for the output.
    imaging_min_side_px: int = Field(default=240, ge=16)
    standard: PhotoStandard = Field(default_factory=PhotoStandard)
