"""Residue of the old background beside the person: found, repaired, and never delivered silently.

Two levels, both with known truth: (1) the measure and the repair on a canvas where the matte is made
to fail on purpose (a pale window kept above the head, a light rim along the hair), and (2) the whole
pipeline on photos with objects reaching into the hair and a bright wall behind a small face
(tests/support/imaging_sets.py): the object's colour never reaches the output unflagged.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.imaging.config import PhotoStandard
from services.imaging.pipeline import check_photo
from services.imaging.preprocess import FaceModels
from services.imaging.quality import Canvas, background_residue, to_lab
from services.imaging.residue import find_residue, repair_residue
from services.imaging.standardize import Rendered, head_features, place, render
from tests.support import imaging_sets
from tests.support.faces import jpeg

STANDARD = PhotoStandard()
BLUE = STANDARD.background_rgb


@pytest.fixture(scope="module")
def canvas(models: FaceModels) -> Canvas:
    """The astronaut's phone photo, placed and rendered: a clean canvas."""
    rgb = imaging_sets.astronaut_phone()
    analysis = imaging_sets._analysis(models, rgb)
    placement = place(analysis, STANDARD)
    assert placement is not None
    return Canvas.build(analysis, placement, render(analysis, placement, STANDARD), STANDARD)


def _with(canvas: Canvas, rendered: Rendered) -> Canvas:
    return Canvas.build(canvas.analysis, canvas.placement, rendered, canvas.standard)


PANE, WALL = imaging_sets.PANE, imaging_sets.WALL
_kept_window, _light_rim = imaging_sets.kept_window, imaging_sets.light_rim


def test_a_clean_canvas_has_no_residue(canvas: Canvas) -> None:
    m = background_residue(canvas)
    assert m.passed, m


@pytest.mark.parametrize("make", [_kept_window, _light_rim], ids=["kept-window", "light-rim"])
def test_residue_made_on_purpose_is_found_and_repaired(canvas: Canvas, make) -> None:
    rendered, truth, colour = make(canvas)
    assert truth.sum() > 100
    assert canvas.analysis.landmarks is not None
    chin, features, face = head_features(canvas.analysis.landmarks, canvas.placement, (480, 640))
    found = find_residue(
        rendered.source, rendered.alpha, rendered.rgb, rendered.inside, BLUE, chin, features, face
    )
    hit = (found.blobs | found.rims) & truth
    assert hit.sum() >= 0.7 * truth.sum(), (hit.sum(), truth.sum())
    # What the rendering finds and repairs is what the measure reports: flagged, never delivered silently.
    r = rendered
    m = background_residue(
        _with(canvas, Rendered(r.source, r.alpha, r.inside, r.rgb, repaired_px=found.pixels))
    )
    assert not m.passed and m.advisory and m.reason == "background_residue", m
    alpha, rgb = repair_residue(rendered.source, rendered.alpha, rendered.rgb, found, BLUE)
    again = find_residue(rendered.source, alpha, rgb, rendered.inside, BLUE, chin, features, face)
    alpha, rgb = repair_residue(rendered.source, alpha, rgb, again, BLUE)  # the second pass, as render does
    after = find_residue(rendered.source, alpha, rgb, rendered.inside, BLUE, chin, features, face)
    assert (after.blobs | after.rims)[truth].sum() <= 0.05 * truth.sum()
    # The repaired pixels read as the new background or a mix of person and background: the old
    # colour is left on at most a tenth of them (what the colour test cannot tell from the person).
    lab = to_lab(rgb)[truth]
    old = to_lab(np.array([[colour]], np.uint8))[0, 0]
    assert (np.linalg.norm(lab - old, axis=1) < 10).mean() < 0.1


def _colour_pixels(jpeg_bytes: bytes, colour: tuple[int, int, int]) -> int:
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg_bytes, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    ref = to_lab(np.array([[colour]], np.uint8))[0, 0]
    return int((np.linalg.norm(to_lab(rgb) - ref, axis=-1) < 10).sum())


@pytest.fixture(scope="module")
def astronaut_cases(models: FaceModels) -> dict[str, np.ndarray]:
    rgb = imaging_sets.astronaut_phone()
    a = imaging_sets._analysis(models, rgb)
    cases = {
        kind: imaging_sets.object_touching_hair(rgb, a, kind)[0] for kind in imaging_sets.RESIDUE_OBJECTS
    }
    cases["bright-wall"] = imaging_sets.on_bright_wall(rgb, a)
    for name, wall in (("clean-grey", (150, 150, 150)), ("clean-white", (236, 236, 236))):
        cases[name] = imaging_sets.on_bright_wall(rgb, a, wall=wall, face_px=None)
    cases["plain"] = rgb
    return cases


@pytest.mark.parametrize("kind", sorted(imaging_sets.RESIDUE_OBJECTS))
def test_an_object_in_the_hair_never_reaches_the_output_unflagged(
    models: FaceModels, astronaut_cases: dict[str, np.ndarray], kind: str
) -> None:
    """The object's colour is gone from the output (repaired), or the photo is flagged or refused."""
    report = check_photo(jpeg(astronaut_cases[kind]), models, standard=STANDARD)
    plain = check_photo(jpeg(astronaut_cases["plain"]), models, standard=STANDARD)
    assert report.jpeg is not None and plain.jpeg is not None
    colour = imaging_sets.RESIDUE_OBJECTS[kind]
    left = _colour_pixels(report.jpeg, colour) - _colour_pixels(plain.jpeg, colour)
    m = next(m for m in report.measures if m.code == "background_residue")
    assert left <= 40 or not m.passed, (kind, left, m)


def test_clean_composites_and_a_bright_wall(
    models: FaceModels, astronaut_cases: dict[str, np.ndarray]
) -> None:
    for name in ("clean-grey", "clean-white", "plain"):
        m = next(
            m
            for m in check_photo(jpeg(astronaut_cases[name]), models, standard=STANDARD).measures
            if m.code == "background_residue"
        )
        assert m.passed, (name, m)
    # The small face before a bright wall: no light rim along the silhouette, or the photo is flagged.
    report = check_photo(jpeg(astronaut_cases["bright-wall"]), models, standard=STANDARD)
    plain = check_photo(jpeg(astronaut_cases["plain"]), models, standard=STANDARD)
    assert report.jpeg is not None and plain.jpeg is not None
    rim = _rim_pixels(report.jpeg) - _rim_pixels(plain.jpeg)
    m = next(m for m in report.measures if m.code == "background_residue")
    assert rim <= 60 or not m.passed, (rim, m)


def _rim_pixels(jpeg_bytes: bytes) -> int:
    """Near-white pixels within 4 px of the blue background (a light rim along the silhouette)."""
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg_bytes, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    lab = to_lab(rgb)
    blue = np.linalg.norm(lab - to_lab(np.array([[BLUE]], np.uint8))[0, 0], axis=-1) < 8
    band = cv2.dilate(blue.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~blue
    white = np.linalg.norm(lab - to_lab(np.array([[(246, 246, 240)]], np.uint8))[0, 0], axis=-1) < 12
    return int((band & white).sum())
