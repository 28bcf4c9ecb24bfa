"""Matching settings: which engine, where its models are, face-size rules and the registrar limit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.config import Settings


class MatchingSettings(Settings):
    service_name: str = "matching"
    http_port: int = 8183
    # `auto`: insightface when a model pack directory is configured, dlib otherwise (offline default).
    matching_engine: Literal["auto", "dlib", "insightface"] = "auto"
    # An unpacked insightface model pack (e.g. buffalo_l: det_10g.onnx + w600k_r50.onnx). Never
    # downloaded by the service: ops mount it (see docs/matching.md).
    matching_insightface_model_dir: Path | None = None
    # onnxruntime execution providers in order of preference; unavailable ones are skipped.
    matching_insightface_providers: str = "CPUExecutionProvider"
    # Detector input (square side, pixels) for packs whose detector takes any size; 640 as in buffalo_l.
    matching_insightface_det_size: int = Field(default=640, ge=128, le=2048)
    matching_insightface_det_threshold: float = Field(default=0.5, gt=0, lt=1)
    # ArcFace input normalisation: 127.5/127.5 for every PyTorch-exported pack (buffalo_l, antelopev2).
    matching_insightface_input_mean: float = 127.5
    matching_insightface_input_std: float = Field(default=127.5, gt=0)
    # Refuse to start on a pack without a MODEL.LICENSE file (insightface packs are non-commercial
    # unless licensed); set true in production once the licence file is in the pack.
    matching_insightface_require_license: bool = False
    # onnxruntime threads per session (0: onnxruntime's default, one per core).
    matching_onnx_threads: int = Field(default=0, ge=0, le=64)
    # dlib: detection runs on a copy scaled down to this longest side (faces stay well above the
    # HOG detector's 80 px window); landmarks and the embedding use the full-resolution image.
    matching_dlib_detect_max_side: int = Field(default=640, ge=160, le=4096)
    # dlib: who computes the 128-d descriptor. `numpy`: services/matching/resnet.py (the same weights and
    # output, ~6x less CPU: 0.16x in make bench-matching; falls back to dlib if its load-time self-check
    # fails); `dlib`: dlib itself.
    matching_dlib_descriptor: Literal["numpy", "dlib"] = "numpy"
    # Where the score scale puts the pass mark 80 (see docs/matching.md for the sources).
    matching_dlib_pass_distance: float = Field(default=0.6, gt=0, lt=1.0)
    matching_insightface_pass_similarity: float = Field(default=0.40, gt=0, lt=1.0)
    # A face narrower than this (pixels, in the original image) is too small to compare reliably.
    matching_min_face_px: int = Field(default=64, ge=16, le=1000)
    # A second face at least this fraction of the largest one's width makes the photo ambiguous;
    # smaller ones (a face on a T-shirt, a poster far behind) are ignored.
    matching_second_face_ratio: float = Field(default=0.5, gt=0, le=1)
    matching_max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    matching_max_pixels: int = Field(default=40_000_000, ge=10_000)
    # Scores within this many points of the pass mark are "borderline" (match.scored.v1 `band`): set
    # from the calibration's spread (`cli calibrate` prints it; docs/matching.md, "Score bands").
    matching_borderline_points: float = Field(default=5.0, ge=0, le=50)
    # Seed step 11: after this many compliant photos of one student fail, the case goes to the
    # registrar exception queue.
    matching_registrar_after_failures: int = Field(default=3, ge=1, le=100)
    # Seed: 不使用与录取相同的照片. The admission photo submitted again is refused, a near copy flagged
    # for the reviewer (services/matching/reuse.py, docs/matching.md "Admission-photo reuse").
    matching_reuse_check: bool = True

    # The keyring for admission-photo descriptors at rest (biometric data): "id:base64,..." of 32-byte keys,
    # the first the current one (shared/keyring.py). Unset outside production: a development key; unset
    # in production: descriptors are not stored and each comparison reads the admission photo again.
    matching_data_keys: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _engine_has_models(self) -> MatchingSettings:
        if self.matching_engine == "insightface" and self.matching_insightface_model_dir is None:
            raise ValueError("MATCHING_ENGINE=insightface needs MATCHING_INSIGHTFACE_MODEL_DIR")
        return self

    @property
    def engine_name(self) -> Literal["dlib", "insightface"]:
        if self.matching_engine == "auto":
            return "insightface" if self.matching_insightface_model_dir is not None else "dlib"
        return self.matching_engine

    @property
    def providers(self) -> list[str]:
        return [p.strip() for p in self.matching_insightface_providers.split(",") if p.strip()]
