"""Is the submitted photo the admission photo again? (seed: 不使用与录取相同的照片; issue 15.5)

Checked before the comparison's verdict, on evidence the comparison already has:

- the face chip each photo yields (the engine's alignment by the eyes and nose: the admission photo's
  face found as the comparison finds it, the student's from imaging's carried eyes). From the chip's
  inner face (background and canvas excluded) a `FacePrint`: a 64-bit DCT perceptual hash of its
  32 × 32 grey and a 16 × 16 colour thumbnail;
- the descriptor distance the comparison computes anyway (on the engine's 0-100 scale).

Decision (`judge`):

- `reused`: the face prints are near-identical and the descriptors agree (score ≥ `SIMILAR_MIN_SCORE`):
  the hash within `REUSE_MAX_HAMMING` bits, the thumbnails' structure (each channel divided by its
  mean) within `REUSE_MAX_STRUCTURE` levels on average, and their colour gains (channel means) within
  `REUSE_MAX_GAIN` of each other, and their colour balance (red over blue) within `REUSE_MAX_BALANCE`:
  the admission photo resized, recompressed, cropped or placed on the canvas, none of which moves a
  channel's mean. Refused with the code `admission_photo_reused`.
- `similar`: near-identical descriptors (score ≥ `SIMILAR_MIN_SCORE`) but pixels clearly different
  (the same photo re-edited, or two shots seconds apart): the system cannot be sure, so the photo is
  not refused; the comparison goes on and carries the flag to the reviewer.
- None: anything else.

The thresholds and their precision/recall on the labelled set are in docs/matching.md and
bench/RESULTS.md ("Admission-photo reuse").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from services.matching.photos import RGBImage

Reuse = Literal["reused", "similar"]

# The inner face of an engine's chip (fractions of its side): no backdrop, no canvas.
_ROWS = (0.18, 0.88)
_COLS = (0.18, 0.82)
THUMB = 16

REUSE_MAX_HAMMING = 10
REUSE_MAX_STRUCTURE = 8.0
REUSE_MAX_GAIN = 0.04
REUSE_MAX_BALANCE = 0.010
SIMILAR_MIN_SCORE = 93.0


@dataclass(frozen=True)
class FacePrint:
    """What the reuse check keeps of a face chip: a perceptual hash and a small colour thumbnail."""

    phash: int
    thumb: NDArray[np.uint8]  # THUMB × THUMB × 3

    def hamming(self, other: FacePrint) -> int:
        return int((self.phash ^ other.phash).bit_count())

    def _means(self) -> NDArray[np.float32]:
        means: NDArray[np.float32] = np.maximum(
            self.thumb.reshape(-1, 3).astype(np.float32).mean(axis=0), np.float32(1.0)
        )
        return means

    def structure(self, other: FacePrint) -> float:
        """Mean absolute difference of the thumbnails, each channel over its mean, in levels of 128."""
        mine = self.thumb.astype(np.float32) / self._means()
        theirs = other.thumb.astype(np.float32) / other._means()
        return float(np.mean(np.abs(mine - theirs)) * 128.0)

    def gain(self, other: FacePrint) -> float:
        """The largest relative difference of a channel's mean (exposure, white balance edits)."""
        return float(np.max(np.abs(self._means() / other._means() - 1.0)))

    def balance(self, other: FacePrint) -> float:
        """The relative difference of the red-over-blue ratio (a white-balance edit moves it)."""
        mine, theirs = self._means(), other._means()
        return float(abs((mine[0] / mine[2]) / (theirs[0] / theirs[2]) - 1.0))


def face_print(chip: RGBImage) -> FacePrint:
    """The inner face of an aligned chip, hashed (DCT pHash, 64 bits) and thumbnailed."""
    h, w = chip.shape[:2]
    inner = chip[int(h * _ROWS[0]) : int(h * _ROWS[1]), int(w * _COLS[0]) : int(w * _COLS[1])]
    grey = cv2.cvtColor(np.ascontiguousarray(inner), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    block = cv2.dct(small)[:8, :8].flatten()
    median = float(np.median(block[1:]))
    bits = 0
    for value in block:
        bits = (bits << 1) | int(value > median)
    thumb = cv2.resize(np.ascontiguousarray(inner), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return FacePrint(phash=bits, thumb=np.ascontiguousarray(thumb, dtype=np.uint8))


@dataclass(frozen=True)
class ReuseEvidence:
    verdict: Reuse | None
    hamming: int | None
    structure: float | None
    gain: float | None
    balance: float | None
    score: float | None

    def as_dict(self) -> dict[str, object]:
        """What the match document keeps (no pixels, no hash)."""
        return {
            "verdict": self.verdict,
            "hamming": self.hamming,
            "structure": None if self.structure is None else round(self.structure, 2),
            "gain": None if self.gain is None else round(self.gain, 4),
            "balance": None if self.balance is None else round(self.balance, 4),
            "score": self.score,
        }


def judge(photo: FacePrint | None, admission: FacePrint | None, score: float | None) -> ReuseEvidence:
    """`score`: the descriptor distance on the engine's 0-100 scale (None: no descriptors)."""
    hamming = None
    structure = gain = balance = None
    if photo is not None and admission is not None:
        hamming = photo.hamming(admission)
        structure = photo.structure(admission)
        gain = photo.gain(admission)
        balance = photo.balance(admission)
    near_descriptor = score is not None and score >= SIMILAR_MIN_SCORE
    same_pixels = (
        hamming is not None
        and structure is not None
        and gain is not None
        and balance is not None
        and hamming <= REUSE_MAX_HAMMING
        and structure <= REUSE_MAX_STRUCTURE
        and gain <= REUSE_MAX_GAIN
        and balance <= REUSE_MAX_BALANCE
    )
    verdict: Reuse | None = None
    if same_pixels and near_descriptor:
        verdict = "reused"
    elif near_descriptor:
        verdict = "similar"
    return ReuseEvidence(
        verdict=verdict, hamming=hamming, structure=structure, gain=gain, balance=balance, score=score
    )
