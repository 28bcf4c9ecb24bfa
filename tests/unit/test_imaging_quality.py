"""Each quality measure passes on a photo that meets its rule and fails on one that breaks it.

The photos are real faces from installed packages and images derived from them (tests/support/faces.py).
Each case runs the whole pipeline and looks at one measure, so a measure is tested in its real context.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest

from services.imaging.config import PhotoStandard
from services.imaging.messages import REJECTION_MESSAGES
from services.imaging.pipeline import Report, check_photo
from services.imaging.preprocess import FaceModels
from services.imaging.quality import (
    ALBUM_MEASURES,
    ANALYSIS_MEASURES,
    CANVAS_MEASURES,
    Canvas,
    eye_line,
    face_centred,
    face_width,
    head_top,
)
from services.imaging.standardize import Placement, place, render
from tests.support import faces, matching_faces

STANDARD = PhotoStandard()


def run(models: FaceModels, img: np.ndarray, source: str = "camera") -> Report:
    return check_photo(faces.jpeg(img), models, standard=STANDARD, source=source)  # type: ignore[arg-type]


def measure(report: Report, code: str):
    found = [m for m in report.measures if m.code == code]
    assert found, f"{code} not measured: {report.reasons}"
    return found[0]


Derive = Callable[[FaceModels], np.ndarray]


def _with_analysis(fn: Callable[..., np.ndarray]) -> Derive:
    return lambda m: fn(faces.hopper(), faces.hopper_analysis(m))


# measure code, failing photo, expected reason, source. The passing photo is Grace Hopper throughout
# (for headwear: the bare-headed package faces, test_bare_heads_pass_the_headwear_check).
FAILING: list[tuple[str, Derive, str, str]] = [
    ("face_count", lambda m: faces.no_face(), "no_face", "camera"),
    ("face_count", lambda m: faces.two_faces(faces.hopper()), "multiple_faces", "camera"),
    ("face_resolution", lambda m: faces.astronaut(), "face_too_small", "camera"),
    ("head_yaw", lambda m: faces.group_faces()[1], "head_turned", "camera"),
    ("head_pitch", lambda m: faces.group_faces()[1], "head_pitched", "camera"),
    ("head_roll", lambda m: faces.rotated(faces.hopper(), 35), "head_tilted", "camera"),
    ("eyes_open", lambda m: faces.group_faces()[0], "eyes_closed", "camera"),
    ("mouth_closed", lambda m: faces.group_faces()[1], "mouth_open", "camera"),
    ("head_in_frame", _with_analysis(faces.head_cut_at_top), "head_cut_off", "camera"),
    ("body_in_frame", _with_analysis(faces.body_cut_below_chin), "body_cut_off", "camera"),
    ("shoulders_level", lambda m: faces.astronaut(), "shoulders_tilted", "camera"),
    ("ears_visible", _with_analysis(faces.ear_painted_over), "ears_covered", "camera"),
    ("eyebrows_visible", _with_analysis(faces.fringe_over_brows), "eyebrows_covered", "camera"),
    ("glasses_tint", _with_analysis(faces.tinted_glasses), "tinted_glasses", "camera"),
    ("glasses_glare", _with_analysis(faces.glasses_glare), "glasses_glare", "camera"),
    ("illumination_balance", lambda m: faces.darkened_one_side(faces.hopper()), "uneven_lighting", "camera"),
    ("face_brightness", lambda m: faces.darkened(faces.hopper()), "face_too_dark", "camera"),
    ("overexposure", lambda m: faces.over_exposed(faces.hopper()), "face_overexposed", "camera"),
    ("sharpness", lambda m: faces.blurred(faces.hopper()), "blurry", "camera"),
    ("colour_photo", lambda m: faces.greyscale(faces.hopper()), "not_colour", "camera"),
    (
        "clothing_contrast",
        _with_analysis(faces.clothes_like_background),
        "clothing_like_background",
        "camera",
    ),
    ("headwear", lambda m: faces.hopper(), "headwear", "camera"),
    ("background_colour", lambda m: faces.hopper(), "background_not_blue", "album"),
    ("background_uniformity", lambda m: faces.hopper(), "background_not_uniform", "album"),
    ("placement", lambda m: faces.group_faces()[2], "head_proportions", "camera"),
]


#: The violating photos above that fall in the room the standard leaves (docs/imaging.md, the audit):
#: flagged for the review with the reason, not refused.
ADVISORY_HERE = {"ears_visible", "shoulders_level", "illumination_balance"}


def test_hopper_meets_every_rule_but_headwear(models: FaceModels) -> None:
    report = run(models, faces.hopper())
    assert report.reasons == faces.HOPPER_FAILS
    codes = {m.code for m in report.measures}
    expected = {"face_count"} | {f.__name__ for f in ANALYSIS_MEASURES + CANVAS_MEASURES}
    assert codes == expected
    for m in report.measures:
        if m.code == "background_residue":
            # Before a flag, the sky's blue is left on the navy cap's edge: repaired, and flagged.
            assert m.advisory, m
        elif m.code != "headwear":
            assert 50 <= m.score <= 100, m
            assert m.reason is None


BARE_HEADS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": faces.astronaut,
    "astronaut-portrait": lambda: matching_faces.portrait(
        matching_faces.astronaut(), matching_faces.ASTRONAUT_FACE, face_px=300
    ),
    **{f"group{i}": functools.partial(faces.group_faces().__getitem__, i) for i in (0, 1)},
    **{
        f"group-portrait{i}": functools.partial(
            lambda i: matching_faces.portrait(
                matching_faces.group_photo(), matching_faces.GROUP_FACES[i], face_px=300
            ),
            i,
        )
        for i in (0, 1, 2, 3, 5)  # 4 is turned too far to place
    },
}


@pytest.mark.parametrize("name", sorted(BARE_HEADS))
def test_bare_heads_pass_the_headwear_check(models: FaceModels, name: str) -> None:
    """Blond, brown, auburn and black hair, short and long, read as hair, not as a hat."""
    m = measure(run(models, BARE_HEADS[name]()), "headwear")
    assert m.passed and m.score >= 50, m


def test_a_standardised_photo_passes_the_album_background_checks(models: FaceModels) -> None:
    """Re-submitting our own output from the album: light blue, uniform, still meets every rule."""
    first = run(models, faces.hopper())
    assert first.jpeg is not None
    again = check_photo(first.jpeg, models, standard=STANDARD, source="album")
    assert again.reasons == faces.HOPPER_FAILS
    assert {f.__name__ for f in ALBUM_MEASURES} <= {m.code for m in again.measures}


@pytest.mark.parametrize(
    ("code", "derive", "reason", "source"), FAILING, ids=[f"{c}-{r}" for c, _, r, _ in FAILING]
)
def test_measure_fails_on_a_photo_that_breaks_its_rule(
    models: FaceModels, code: str, derive: Derive, reason: str, source: str
) -> None:
    report = run(models, derive(models), source)
    m = measure(report, code)
    assert not m.passed and m.reason == reason, m
    assert m.score < 50 or code in ("face_count", "placement")
    # Refused, or (where the standard leaves room) flagged for the review: never passed silently.
    if code in ADVISORY_HERE:
        assert m.advisory and reason in report.flags and reason not in report.reasons, m
    else:
        assert not m.advisory and not report.ok and reason in report.reasons, m
    assert reason in REJECTION_MESSAGES


def test_the_roll_is_corrected_not_refused(models: FaceModels) -> None:
    report = run(models, faces.rotated(faces.hopper(), 15))
    assert report.reasons == faces.HOPPER_FAILS
    assert report.geometry is not None and abs(report.geometry["roll_corrected_deg"]) > 10


def _hopper_canvas(models: FaceModels, shift_x: float = 0, shift_y: float = 0, zoom: float = 1.0) -> Canvas:
    analysis = faces.hopper_analysis(models)
    placement = place(analysis, STANDARD)
    assert placement is not None
    matrix = placement.matrix.copy()
    matrix[:, :2] *= zoom
    matrix[:, 2] = (matrix[:, 2] - [240, 320]) * zoom + [240 + shift_x, 320 + shift_y]
    moved = Placement(
        matrix,
        placement.scale * zoom,
        placement.head_top,
        placement.eye_line,
        placement.face_width * zoom,
        placement.roll_deg,
    )
    return Canvas.build(analysis, moved, render(analysis, moved, STANDARD), STANDARD)


def test_geometry_measures_pass_where_the_placement_put_the_head(models: FaceModels) -> None:
    canvas = _hopper_canvas(models)
    for fn in (face_centred, head_top, eye_line, face_width):
        assert fn(canvas).passed, fn(canvas)


@pytest.mark.parametrize(
    ("fn", "shift", "reason"),
    [
        (face_centred, {"shift_x": 40}, "face_off_centre"),
        (head_top, {"shift_y": -60}, "head_top_out_of_range"),
        (eye_line, {"shift_y": 60}, "eye_line_out_of_range"),
        (face_width, {"zoom": 1.6}, "face_width_out_of_range"),
    ],
)
def test_geometry_measures_fail_on_a_misplaced_head(models: FaceModels, fn, shift, reason: str) -> None:
    m = fn(_hopper_canvas(models, **shift))
    assert not m.passed and m.reason == reason, m


def test_every_reason_has_a_short_chinese_message() -> None:
    reasons = {r for _, _, r, _ in FAILING} | {
        "face_off_centre",
        "head_top_out_of_range",
        "eye_line_out_of_range",
        "face_width_out_of_range",
        "face_too_bright",
    }
    for reason in reasons:
        text = REJECTION_MESSAGES[reason]
        assert 4 <= len(text) <= 80 and any("\u4e00" <= ch <= "\u9fff" for ch in text), reason
