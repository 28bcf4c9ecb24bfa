"""The 0-100 scale: monotonic, the pass mark 80 exactly at each engine's operating point."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.matching.score import PASS_MARK, ScoreScale, dlib_scale, insightface_scale


def test_pass_mark_sits_at_the_published_operating_points() -> None:
    assert dlib_scale().score(0.6) == PASS_MARK == 80.0
    assert insightface_scale().score(0.40) == 80.0
    assert dlib_scale().raw_at(80.0) == pytest.approx(0.6)
    assert insightface_scale().raw_at(80.0) == pytest.approx(0.40)
    # A hair on either side of the threshold lands on the right side of 80.
    assert dlib_scale().score(0.599) >= 80 > dlib_scale().score(0.601)
    assert insightface_scale().score(0.401) >= 80 > insightface_scale().score(0.399)


def test_scales_are_monotonic_and_bounded() -> None:
    distances = np.linspace(-0.5, 2.0, 2001)
    dlib_scores = [dlib_scale().score(float(d)) for d in distances]
    assert all(a >= b for a, b in itertools.pairwise(dlib_scores))  # lower distance, higher score
    sims = np.linspace(-1.0, 1.0, 2001)
    if_scores = [insightface_scale().score(float(s)) for s in sims]
    assert all(a <= b for a, b in itertools.pairwise(if_scores))
    for score in dlib_scores + if_scores:
        assert 0.0 <= score <= 100.0
    assert dlib_scale().score(0.0) == 100.0 and dlib_scale().score(1.3) == 0.0
    assert insightface_scale().score(1.0) == 100.0 and insightface_scale().score(-0.2) == 0.0


def test_a_configured_operating_point_moves_80_with_it() -> None:
    assert dlib_scale(0.5).score(0.5) == 80.0
    assert insightface_scale(0.5).score(0.5) == 80.0


@pytest.mark.parametrize(
    "anchors",
    [
        ((0.0, 100.0),),  # one point
        ((0.0, 100.0), (0.6, 80.0), (0.5, 0.0)),  # raw not increasing
        ((0.0, 100.0), (0.6, 80.0), (1.0, 90.0)),  # not monotonic
        ((0.0, 120.0), (1.0, 0.0)),  # outside 0-100
    ],
)
def test_invalid_scales_are_refused(anchors: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError):
        ScoreScale("bad", anchors)
