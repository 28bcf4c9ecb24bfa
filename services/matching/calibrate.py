"""Error rates of an engine on labelled pairs, and the threshold that gives a target false-accept rate.

What ops run before trusting the pass mark on their own population (docs/matching.md, "Calibrating"):
80 should sit where the false-accept rate is 1/10,000. Pure computation on raw similarities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatingPoint:
    """At `threshold` (raw), the measured false-accept and false-reject rates."""

    threshold: float
    far: float
    frr: float


def accepts(raw: float, threshold: float, *, higher_is_better: bool) -> bool:
    return raw >= threshold if higher_is_better else raw <= threshold


def rates(
    genuine: Sequence[float], impostor: Sequence[float], threshold: float, *, higher_is_better: bool
) -> OperatingPoint:
    false_accepts = sum(accepts(r, threshold, higher_is_better=higher_is_better) for r in impostor)
    false_rejects = sum(not accepts(r, threshold, higher_is_better=higher_is_better) for r in genuine)
    return OperatingPoint(
        threshold=threshold,
        far=false_accepts / len(impostor) if impostor else math.nan,
        frr=false_rejects / len(genuine) if genuine else math.nan,
    )


def threshold_at_far(
    genuine: Sequence[float], impostor: Sequence[float], target_far: float, *, higher_is_better: bool
) -> OperatingPoint | None:
    """The most lenient threshold whose measured FAR is at most `target_far`.

    None when there are fewer than 1/target_far impostor pairs: the rate cannot be measured then.
    """
    if not impostor or len(impostor) * target_far < 1.0:
        return None
    allowed = math.floor(target_far * len(impostor))
    # Impostors ordered from most to least alike; the threshold lies just beyond the (allowed+1)-th.
    ordered = sorted(impostor, reverse=higher_is_better)
    boundary = ordered[allowed]
    threshold = math.nextafter(boundary, math.inf if higher_is_better else -math.inf)
    return rates(genuine, impostor, threshold, higher_is_better=higher_is_better)
