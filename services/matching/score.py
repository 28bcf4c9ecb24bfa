"""An engine's raw similarity mapped onto the 0-100 scale on which the pass mark is 80.

The scale is piecewise linear through anchor points, so it is monotonic and every anchor can be
cited: the pass mark 80 sits at the engine's published verification operating point (DOMAIN.md,
"What 80 means"; the points, their sources and the expected error rates are in docs/matching.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PASS_MARK = 80.0

Band = Literal["clear_pass", "borderline", "clear_fail"]


def band(score: float, pass_mark: float, borderline_points: float) -> Band:
    """Where a score sits: within `borderline_points` of the pass mark (either side) it is borderline.

    The width comes from the calibration's spread (docs/matching.md, "Score bands"): reviewers look
    hardest at borderline passes.
    """
    if score >= pass_mark + borderline_points:
        return "clear_pass"
    if score < pass_mark - borderline_points:
        return "clear_fail"
    return "borderline"


@dataclass(frozen=True)
class ScoreScale:
    """Anchors `(raw, score)` sorted by raw value; scores must run one way only (monotonic)."""

    name: str
    anchors: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        raws = [raw for raw, _ in self.anchors]
        scores = [score for _, score in self.anchors]
        if len(self.anchors) < 2 or raws != sorted(set(raws)):
            raise ValueError(f"{self.name}: anchors need at least two strictly increasing raw values")
        steps = [b - a for a, b in itertools.pairwise(scores)]
        if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
            raise ValueError(f"{self.name}: scores must be strictly monotonic across anchors")
        if not all(0 <= s <= 100 for s in scores):
            raise ValueError(f"{self.name}: scores must lie in 0-100")

    @property
    def higher_raw_is_better(self) -> bool:
        return self.anchors[-1][1] > self.anchors[0][1]

    def score(self, raw: float) -> float:
        """0-100, rounded to 2 decimals (what the student sees is what `passed` is decided on)."""
        points = self.anchors
        if raw <= points[0][0]:
            value = points[0][1]
        elif raw >= points[-1][0]:
            value = points[-1][1]
        else:
            value = points[-1][1]
            for (x0, y0), (x1, y1) in itertools.pairwise(points):
                if x0 <= raw <= x1:
                    value = y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
                    break
        return round(min(100.0, max(0.0, value)), 2)

    def raw_at(self, score: float) -> float:
        """The raw value that maps to `score` (the engine threshold a pass mark stands for)."""
        points: Sequence[tuple[float, float]] = self.anchors
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if min(y0, y1) <= score <= max(y0, y1):
                return x0 + (x1 - x0) * (score - y0) / (y1 - y0)
        raise ValueError(f"score {score} outside {self.name}'s scale")


def dlib_scale(pass_distance: float = 0.6) -> ScoreScale:
    """dlib's ResNet: Euclidean distance between 128-d descriptors, lower is more alike.

    0.6 is dlib's published same-person threshold (LFW, 99.38 %); distance 0 is 100 and 1.0 (far
    beyond any same-person pair dlib reports) is 0.
    """
    return ScoreScale("dlib", ((0.0, 100.0), (pass_distance, PASS_MARK), (1.0, 0.0)))


def insightface_scale(pass_similarity: float = 0.40) -> ScoreScale:
    """ArcFace: cosine similarity of 512-d embeddings, higher is more alike.

    0.40 is insightface's own default verification threshold; cosine 0 (unrelated faces) is 0 and
    1 (the same image) is 100.
    """
    return ScoreScale("insightface", ((0.0, 0.0), (pass_similarity, PASS_MARK), (1.0, 100.0)))
