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
    # The mesh reads ±6° on frontal faces, and "端正" has no number in the standard: up to these a
    # turned or raised head goes to the review flagged; beyond them it is refused.
    max_yaw_refused_deg: float = 18.0
    max_pitch_refused_deg: float = 22.0
    # Roll is corrected by rotating the photo; beyond this the camera or head was too crooked to trust.
    max_roll_deg: float = 25.0
    # Shoulders level (the standard: 双肩水平) after the roll correction; degrees.
    max_shoulder_tilt_deg: float = 8.0
    # ...up to this the review decides (a body turned a little tilts the shoulder line); beyond, refused.
    max_shoulder_tilt_refused_deg: float = 15.0
    # Eyes open, looking ahead (the standard: 双眼自然睁开): eyelid gap / eye width, the smaller eye.
    min_eye_openness: float = 0.14
    # Mouth closed, natural expression (the standard: 嘴巴自然闭合): lip gap / mouth width.
    max_mouth_openness: float = 0.12
    # A smile parts the lips (the standard asks for a natural expression: where a smile stops being
    # natural is the reviewer's call): up to this the photo goes to the review flagged; an open mouth
    # beyond it is refused.
    max_mouth_openness_refused: float = 0.20
    # Ears visible, not covered by hair (the standard: 双耳对称露出, 头发不得遮挡耳朵): share of skin
    # pixels next to the face outline at ear height, the worse side.
    min_ear_skin_share: float = 0.20
    # Below it the photo is refused only under this share. Hair near the ears is where the standard
    # leaves room (and blond or grey hair over an ear is not told from skin): default 0, so this
    # measure is advisory only: the reviewer sees the flag and looks.
    min_ear_skin_share_refused: float = 0.0
    # Eyebrows and eyes not covered by hair (the standard: 头发不得遮挡眉毛、眼睛): share of skin
    # pixels in the band just above the eyebrows.
    min_brow_skin_share: float = 0.45
    # A fringe that touches the eyebrows goes to the review; one that hides them is refused.
    min_brow_skin_share_refused: float = 0.15
    # Even lighting, no yin-yang face (the standard: 光线均匀, 不得有阴阳脸): darker / brighter cheek
    # luminance ratio.
    min_cheek_balance: float = 0.72
    # Mild side light goes to the review flagged (the standard gives no number); a yin-yang face is refused.
    min_cheek_balance_refused: float = 0.55
    # No under- or over-exposure (the standard: 不得过曝): mean face luminance (0-255), and the share
    # of clipped (≥ 250) face pixels.
    min_face_luminance: float = 70.0
    max_face_luminance: float = 225.0
    max_clipped_share: float = 0.05
    # Sharp (the standard: 清晰): variance of the Laplacian of the face at output scale.
    min_sharpness: float = 150.0
    # No headwear (the standard: 免冠, 不得戴帽子/头饰). Judged by texture, not colour: the mean
    # orientation coherence of the crown (hair is strands, cloth is flat). Ours, from the labelled
    # set (bench/RESULTS.md): hair of every colour reads ≥ 0.59, drawn hats ≤ 0.58, Grace Hopper's cap
    # 0.54 (0.49-0.51 repainted grey, black or red). Under the threshold: flagged for the review;
    # under the hard limit, or with the crown's colour one hair rarely has, refused.
    min_crown_hair_coherence: float = 0.57
    min_crown_hair_coherence_refused: float = 0.50
    # The colour evidence: share of the crown in colours natural hair rarely has (b* < 0 or a* < -15 at
    # chroma ≥ 6, or chroma ≥ 60). It only confirms a low texture reading; dyed hair is hair.
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
    # No remnant of the old background beside the person (the standard: 背景 ... 无杂物; what CHSI's
    # reviewers refuse as 抠图残留): pixels of old-background colour the matte kept near the
    # silhouette, and light or dark rims along it (services/imaging/residue.py), counted before the
    # repair plus what is left after it, canvas px. Ours: clean package composites read ≤ 160 px.
    # Above the threshold the (repaired) photo goes to the review flagged; above the hard limit
    # (about 6% of the canvas: a piece of the room kept beside the head) it is refused: retake in
    # front of a plain wall. A blurred photo's wide soft edge reads ~4,000 px, so the limit is high.
    repair_residue: bool = True
    max_residue_px: float = 200.0
    max_residue_refused_px: float = 20000.0
    # Not re-photographed (the seed: 不得使用任何翻拍的照片): the strongest isolated peak of the
    # photo's spectrum around the face (a screen's pixel grid and moiré, a print's halftone). Ours:
    # live package photos read ≤ 4, screens and prints 4.3-14 (bench/RESULTS.md). Above the threshold
    # the photo is flagged for the review (stripes and blinds make peaks too); at the framed limit with
    # a screen's or print's frame on three sides, refused.
    max_recapture_peak: float = 5.0
    max_recapture_peak_framed: float = 7.0
    # Not beautified (the seed: 照片未经美颜处理): skin texture / eye-region texture. Ours: package
    # portraits ≥ 0.178, smoothed skin 0.136-0.298: below this the photo is flagged for the review
    # (advisory only: the ranges overlap).
    min_skin_texture_ratio: float = 0.16
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
