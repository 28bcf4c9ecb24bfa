"""Quality measures of the CHSI photo standard, one unit each (the OFIQ pattern).

Every measure returns a raw value (its unit in the docstring), a 0-100 score, pass/fail against the
threshold in :class:`PhotoStandard`, and a stable reason code when it fails (the Chinese text is in
messages.py). Scores are 50 exactly at the threshold, 100 at twice the margin, so operators can sort
borderline photos. The measures read the shared pre-processing (:class:`Analysis`) and, once the photo
is placed, the standardised canvas (:class:`Rendered`): lighting, sharpness and coverings are judged
on what CHSI will receive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from services.imaging.config import PhotoStandard
from services.imaging.preprocess import (
    BROW_LEFT,
    BROW_RIGHT,
    CHEEK_LEFT,
    CHEEK_RIGHT,
    CHIN,
    EYE_LEFT_CORNERS,
    EYE_LEFT_LIDS,
    EYE_RIGHT_CORNERS,
    EYE_RIGHT_LIDS,
    FACE_EDGE_LEFT,
    FACE_EDGE_RIGHT,
    FACE_OVAL,
    FOREHEAD,
    IRIS_LEFT,
    IRIS_RIGHT,
    MOUTH_CORNERS,
    MOUTH_INNER,
    NOSE_TIP,
    Analysis,
    apply_affine,
    invert_affine,
)
from services.imaging.standardize import Placement, Rendered


@dataclass(frozen=True)
class Measure:
    """One measure's verdict; ``reason`` is None when it passed."""

    code: str
    raw: float | None
    score: float
    passed: bool
    reason: str | None
    threshold: str


def _at_least(code: str, reason: str, raw: float, threshold: float, unit: str = "") -> Measure:
    score = 100.0 if threshold <= 0 else float(np.clip(50.0 * raw / threshold, 0, 100))
    passed = raw >= threshold
    return Measure(
        code, round(raw, 4), round(score, 1), passed, None if passed else reason, f">= {threshold:g}{unit}"
    )


def _at_most(code: str, reason: str, raw: float, threshold: float, unit: str = "") -> Measure:
    score = (
        float(np.clip(100.0 - 50.0 * raw / threshold, 0, 100))
        if threshold > 0
        else (100.0 if raw <= 0 else 0.0)
    )
    passed = raw <= threshold
    return Measure(
        code, round(raw, 4), round(score, 1), passed, None if passed else reason, f"<= {threshold:g}{unit}"
    )


def _within(code: str, reason: str, raw: float, lo: float, hi: float, unit: str = "") -> Measure:
    """Score 100 at the middle of [lo, hi], 50 at either limit, 0 half a range outside."""
    half = (hi - lo) / 2
    score = float(np.clip(100.0 - 50.0 * abs(raw - (lo + hi) / 2) / half, 0, 100)) if half > 0 else 0.0
    passed = lo <= raw <= hi
    return Measure(
        code, round(raw, 4), round(score, 1), passed, None if passed else reason, f"{lo:g}-{hi:g}{unit}"
    )


# --- colour helpers ----------------------------------------------------------------------------------


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32 0-255."""
    f = rgb.astype(np.float32)
    luma: np.ndarray = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return luma


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (L 0-100, a and b signed) of sRGB pixels, float32."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def delta_e(lab: np.ndarray, reference_rgb: tuple[int, int, int]) -> np.ndarray:
    """CIE ΔE76 of each Lab pixel to an sRGB reference colour."""
    ref = to_lab(np.array([[reference_rgb]], np.uint8))[0, 0]
    diff: np.ndarray = np.linalg.norm(lab - ref, axis=-1)
    return diff


# --- the context the measures read -------------------------------------------------------------------


@dataclass
class Canvas:
    """The placed photo: landmarks, regions and colour planes on the 480×640 canvas, computed once."""

    analysis: Analysis
    placement: Placement
    rendered: Rendered
    standard: PhotoStandard
    points: np.ndarray  # landmarks in canvas pixels (N×2)
    face_mask: np.ndarray  # bool: inside the face oval
    luma: np.ndarray  # float32 luminance of the standardised canvas
    lab: np.ndarray  # float32 Lab of the standardised canvas
    skin_lab: np.ndarray  # median Lab of the cheeks and nose

    @classmethod
    def build(
        cls, analysis: Analysis, placement: Placement, rendered: Rendered, standard: PhotoStandard
    ) -> Canvas:
        assert analysis.landmarks is not None
        points = apply_affine(placement.matrix, analysis.landmarks)
        h, w = rendered.rgb.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(points[list(FACE_OVAL)]).astype(np.int32)], 1)
        lab = to_lab(rendered.rgb)
        fw = placement.face_width
        skin = np.zeros((h, w), np.uint8)
        for idx in (CHEEK_LEFT, CHEEK_RIGHT, NOSE_TIP):
            x, y = points[idx]
            cv2.circle(skin, (round(x), round(y)), max(2, round(0.06 * fw)), 1, -1)
        skin_pixels = lab[skin.astype(bool)]
        skin_lab = (
            np.median(skin_pixels, axis=0) if len(skin_pixels) else np.array([60.0, 15.0, 15.0], np.float32)
        )
        return cls(
            analysis,
            placement,
            rendered,
            standard,
            points,
            mask.astype(bool),
            luminance(rendered.rgb),
            lab,
            skin_lab,
        )

    @property
    def face_width(self) -> float:
        return float(self.points[FACE_EDGE_RIGHT, 0] - self.points[FACE_EDGE_LEFT, 0])

    def box(self, cx: float, cy: float, half_w: float, half_h: float) -> tuple[slice, slice]:
        h, w = self.luma.shape
        x0, x1 = int(max(0, cx - half_w)), int(min(w, cx + half_w))
        y0, y1 = int(max(0, cy - half_h)), int(min(h, cy + half_h))
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def skin_share(self, region: tuple[slice, slice]) -> float:
        """Share of a region's person pixels that look like this face's skin.

        Skin is judged by hue and relative chroma and lightness, not by absolute colour, so a cheek in
        shadow is still skin while black, grey or white hair is not (blond hair can pass as skin: a
        known limit). A region that is mostly not person (background) counts as no skin.
        """
        lab = self.lab[region]
        if lab.size == 0:
            return 0.0
        person = self.rendered.alpha[region] > 0.5
        if person.mean() < 0.3:
            return 0.0
        skin_l, skin_a, skin_b = (float(v) for v in self.skin_lab)
        skin_hue, skin_chroma = np.arctan2(skin_b, skin_a), max(np.hypot(skin_a, skin_b), 1.0)
        hue = np.arctan2(lab[..., 2], lab[..., 1])
        hue_diff = np.abs(np.angle(np.exp(1j * (hue - skin_hue))))
        chroma = np.hypot(lab[..., 1], lab[..., 2])
        skin = (hue_diff < np.radians(25)) & (chroma > 0.35 * skin_chroma) & (lab[..., 0] > 0.45 * skin_l)
        return float((skin & person).sum() / person.sum())


# --- measures on the analysis (before placement) -----------------------------------------------------


def face_count(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Exactly one face (raw: faces counted; the standard: 单人正面免冠)."""
    n = analysis.face_count
    reason = "no_face" if n == 0 else "multiple_faces"
    return Measure(
        "face_count", float(n), 100.0 if n == 1 else 0.0, n == 1, None if n == 1 else reason, "== 1"
    )


def face_resolution(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Face width in the original photo (raw: pixels at full resolution, cheek to cheek)."""
    raw = analysis.face_width / analysis.photo.scale
    return _at_least("face_resolution", "face_too_small", raw, standard.min_face_width_source_px, " px")


def head_yaw(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Head turned left/right (raw: degrees, |yaw|)."""
    assert analysis.pose is not None
    return _at_most("head_yaw", "head_turned", abs(analysis.pose.yaw), standard.max_yaw_deg, "°")


def head_pitch(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Head raised or lowered (raw: degrees, |pitch|)."""
    assert analysis.pose is not None
    return _at_most("head_pitch", "head_pitched", abs(analysis.pose.pitch), standard.max_pitch_deg, "°")


def head_roll(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Head or camera tilted sideways (raw: degrees, |roll|); smaller rolls are corrected."""
    assert analysis.pose is not None
    return _at_most("head_roll", "head_tilted", abs(analysis.pose.roll), standard.max_roll_deg, "°")


def _openness(points: np.ndarray, lids: tuple[tuple[int, int], ...], corners: tuple[int, int]) -> float:
    gap = np.mean([np.linalg.norm(points[a, :2] - points[b, :2]) for a, b in lids])
    width = np.linalg.norm(points[corners[0], :2] - points[corners[1], :2])
    return float(gap / width) if width > 0 else 0.0


def eyes_open(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Eyes open (raw: eyelid gap / eye width of the less open eye)."""
    assert analysis.landmarks is not None
    p = analysis.landmarks
    raw = min(_openness(p, EYE_LEFT_LIDS, EYE_LEFT_CORNERS), _openness(p, EYE_RIGHT_LIDS, EYE_RIGHT_CORNERS))
    return _at_least("eyes_open", "eyes_closed", raw, standard.min_eye_openness)


def mouth_closed(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Mouth closed (raw: inner-lip gap / mouth width)."""
    assert analysis.landmarks is not None
    p = analysis.landmarks
    gap = np.linalg.norm(p[MOUTH_INNER[0], :2] - p[MOUTH_INNER[1], :2])
    width = np.linalg.norm(p[MOUTH_CORNERS[0], :2] - p[MOUTH_CORNERS[1], :2])
    raw = float(gap / width) if width > 0 else 1.0
    return _at_most("mouth_closed", "mouth_open", raw, standard.max_mouth_openness)


# --- measures on the canvas --------------------------------------------------------------------------


def face_centred(c: Canvas) -> Measure:
    """Head centred horizontally (raw: |face centre x - canvas centre|, canvas pixels)."""
    centre = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    raw = abs(float(centre) - c.standard.width_px / 2)
    return _at_most("face_centred", "face_off_centre", raw, c.standard.max_centre_offset_px, " px")


def measured_head_top(c: Canvas) -> float:
    """Head top on the canvas from the final matte: the crown over the central band of the face."""
    fw = c.face_width
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    xs = np.clip(
        np.round(np.linspace(cx - 0.22 * fw, cx + 0.22 * fw, 15)).astype(int), 0, c.standard.width_px - 1
    )
    forehead_row = int(np.clip(c.points[FOREHEAD, 1], 0, c.standard.height_px - 1))
    tops = []
    for x in xs:
        column = c.rendered.alpha[: forehead_row + 1, x]
        below = np.nonzero(column < 0.5)[0]
        tops.append(float(below[-1] + 1) if below.size else 0.0)
    return float(np.percentile(tops, 15))


def head_top(c: Canvas) -> Measure:
    """Head top below the top edge (raw: canvas pixels; the standard: 50-110)."""
    s = c.standard
    return _within(
        "head_top", "head_top_out_of_range", measured_head_top(c), s.head_top_min_px, s.head_top_max_px, " px"
    )


def eye_line(c: Canvas) -> Measure:
    """Eye line below the top edge (raw: canvas pixels, mean of the irises; the standard: 200-300)."""
    s = c.standard
    raw = float((c.points[IRIS_LEFT, 1] + c.points[IRIS_RIGHT, 1]) / 2)
    return _within("eye_line", "eye_line_out_of_range", raw, s.eye_line_min_px, s.eye_line_max_px, " px")


def face_width(c: Canvas) -> Measure:
    """Face width (raw: canvas pixels between the face outline at the cheekbones; the standard: 180-300)."""
    s = c.standard
    return _within(
        "face_width", "face_width_out_of_range", c.face_width, s.face_width_min_px, s.face_width_max_px, " px"
    )


def head_in_frame(c: Canvas) -> Measure:
    """The head does not touch the original's top edge (raw: free canvas rows above the crown)."""
    a = c.analysis
    assert a.aligned is not None
    crown = apply_affine(invert_affine(a.aligned), np.array([[a.face_centre_x, a.head_top]]))[0]
    raw = float(crown[1]) * c.placement.scale
    if a.head_top_at_window_edge:
        raw = min(raw, 0.0)
    return _at_least("head_in_frame", "head_cut_off", raw, c.standard.min_headroom_px, " px")


def body_in_frame(c: Canvas) -> Measure:
    """The person does not run off the original (raw: share of the canvas that is person from outside)."""
    outside_person = (~c.rendered.inside) & (c.rendered.alpha > 0.5)
    raw = float(outside_person.mean())
    return _at_most("body_in_frame", "body_cut_off", raw, c.standard.max_outside_body_share)


def shoulders_level(c: Canvas) -> Measure:
    """Shoulders level after the roll correction (raw: degrees of the shoulder line)."""
    alpha = c.rendered.alpha
    h, w = alpha.shape
    chin = int(np.clip(c.points[CHIN, 1], 0, h - 1))
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    slopes = []
    for offset in np.linspace(0.55, 1.0, 6) * c.face_width:
        xl, xr = int(cx - offset), int(cx + offset)
        if xl < 0 or xr >= w:
            continue
        rows_l = np.nonzero(alpha[chin:, xl] > 0.5)[0]
        rows_r = np.nonzero(alpha[chin:, xr] > 0.5)[0]
        if rows_l.size and rows_r.size:
            slopes.append(np.degrees(np.arctan2(rows_l[0] - rows_r[0], xr - xl)))
    raw = float(abs(np.median(slopes))) if slopes else 0.0
    return _at_most("shoulders_level", "shoulders_tilted", raw, c.standard.max_shoulder_tilt_deg, "°")


def ears_visible(c: Canvas) -> Measure:
    """Both ears visible, not covered by hair (raw: skin share beside the face at ear height, worse side)."""
    fw = c.face_width
    eye_y = (c.points[IRIS_LEFT, 1] + c.points[IRIS_RIGHT, 1]) / 2
    nose_y = c.points[NOSE_TIP, 1]
    cy = (eye_y + nose_y) / 2
    half_h = max(2.0, (nose_y - eye_y) * 0.6)
    shares = []
    for idx, direction in ((FACE_EDGE_LEFT, -1), (FACE_EDGE_RIGHT, 1)):
        x = c.points[idx, 0] + direction * 0.07 * fw
        shares.append(c.skin_share(c.box(x, cy, 0.06 * fw, half_h)))
    return _at_least("ears_visible", "ears_covered", min(shares), c.standard.min_ear_skin_share)


def eyebrows_visible(c: Canvas) -> Measure:
    """Eyebrows and eyes not covered by hair (raw: skin share just above the eyebrows, worse side)."""
    fw = c.face_width
    shares = []
    for brow in (BROW_LEFT, BROW_RIGHT):
        pts = c.points[list(brow)]
        cx, top = float(pts[:, 0].mean()), float(pts[:, 1].min())
        shares.append(c.skin_share(c.box(cx, top - 0.035 * fw, 0.1 * fw, 0.025 * fw)))
    return _at_least("eyebrows_visible", "eyebrows_covered", min(shares), c.standard.min_brow_skin_share)


def headwear(c: Canvas) -> Measure:
    """No hat, cap or headscarf (raw: share of the crown in colours natural hair never has).

    Hair, whatever its shade, is neutral or warm (black, brown, auburn, blond, grey: CIELAB b* ≥ 0,
    hue between red and yellow); headwear often is not (navy, blue, green, purple) or is vivid (a
    red cap, a gold badge). The crown is the solid person region (eroded, so no recoloured edge
    counts) between the head top and the top of the forehead over the face's width. Limits: a black,
    brown or beige hat reads as hair, and blue-dyed hair as a hat (manual review sees both).
    """
    fw = c.face_width
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    top, forehead = measured_head_top(c), float(c.points[FOREHEAD, 1])
    region = c.box(cx, (top + forehead) / 2, 0.45 * fw, max(0.0, (forehead - top) / 2))
    solid = cv2.erode((c.rendered.alpha[region] > 0.98).astype(np.uint8), np.ones((9, 9), np.uint8))
    lab = c.lab[region][solid.astype(bool)]
    threshold = c.standard.max_headwear_share
    if lab.shape[0] < 300:  # no crown to judge (a shaved head is skin: it is judged)
        return Measure("headwear", None, 100.0, True, None, f"<= {threshold:g}")
    a, b = lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    unnatural = ((chroma >= 6) & ((b < 0) | (a < -15))) | (chroma >= 60)
    return _at_most("headwear", "headwear", float(unnatural.mean()), threshold)


def _cheek_luma(c: Canvas, idx: int) -> float:
    region = c.box(c.points[idx, 0], c.points[idx, 1], 0.07 * c.face_width, 0.07 * c.face_width)
    values = c.luma[region]
    return float(values.mean()) if values.size else 0.0


def illumination_balance(c: Canvas) -> Measure:
    """Even light on both cheeks, no yin-yang face (raw: darker / brighter cheek luminance)."""
    left, right = _cheek_luma(c, CHEEK_LEFT), _cheek_luma(c, CHEEK_RIGHT)
    raw = min(left, right) / max(left, right, 1e-6)
    return _at_least("illumination_balance", "uneven_lighting", raw, c.standard.min_cheek_balance)


def face_brightness(c: Canvas) -> Measure:
    """Face neither too dark nor too bright (raw: mean face luminance, 0-255)."""
    raw = float(c.luma[c.face_mask].mean()) if c.face_mask.any() else 0.0
    s = c.standard
    m = _within("face_brightness", "face_too_dark", raw, s.min_face_luminance, s.max_face_luminance)
    if not m.passed and raw > s.max_face_luminance:
        m = Measure(m.code, m.raw, m.score, False, "face_too_bright", m.threshold)
    return m


def overexposure(c: Canvas) -> Measure:
    """No blown highlights on the face (raw: share of face pixels at luminance ≥ 250)."""
    values = c.luma[c.face_mask]
    raw = float((values >= 250).mean()) if values.size else 0.0
    return _at_most("overexposure", "face_overexposed", raw, c.standard.max_clipped_share)


def sharpness(c: Canvas) -> Measure:
    """Sharp, in focus (raw: variance of the Laplacian inside the face oval, canvas scale)."""
    lap = cv2.Laplacian(c.luma, cv2.CV_32F, ksize=3)
    inner = cv2.erode(c.face_mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    raw = float(lap[inner].var()) if inner.any() else 0.0
    return _at_least("sharpness", "blurry", raw, c.standard.min_sharpness)


def _eye_regions(c: Canvas) -> list[tuple[slice, slice]]:
    fw = c.face_width
    regions = []
    for corners, iris in ((EYE_LEFT_CORNERS, IRIS_LEFT), (EYE_RIGHT_CORNERS, IRIS_RIGHT)):
        cx = (c.points[corners[0], 0] + c.points[corners[1], 0]) / 2
        regions.append(c.box(cx, c.points[iris, 1], 0.15 * fw, 0.08 * fw))
    return regions


def glasses_tint(c: Canvas) -> Measure:
    """No tinted glasses (raw: eye-region / cheek luminance; dark lenses push it far below 1)."""
    eyes = np.concatenate([c.luma[r].ravel() for r in _eye_regions(c)])
    cheeks = (_cheek_luma(c, CHEEK_LEFT) + _cheek_luma(c, CHEEK_RIGHT)) / 2
    raw = float(eyes.mean() / cheeks) if cheeks > 0 and eyes.size else 0.0
    return _at_least("glasses_tint", "tinted_glasses", raw, c.standard.min_eye_luminance_ratio)


def glasses_glare(c: Canvas) -> Measure:
    """No reflections on glasses (raw: share of near-white, colourless pixels around the eyes)."""
    rgb = c.rendered.rgb
    shares = []
    for region in _eye_regions(c):
        patch = rgb[region].astype(np.int16)
        if patch.size == 0:
            continue
        bright = (c.luma[region] >= 235) & ((patch.max(axis=-1) - patch.min(axis=-1)) < 30)
        shares.append(float(bright.mean()))
    return _at_most(
        "glasses_glare", "glasses_glare", max(shares) if shares else 0.0, c.standard.max_eye_glare_share
    )


def colour_photo(c: Canvas) -> Measure:
    """A colour photo, not black-and-white (raw: CIELAB chroma C* of the face skin)."""
    raw = float(np.hypot(c.skin_lab[1], c.skin_lab[2]))
    return _at_least("colour_photo", "not_colour", raw, c.standard.min_face_chroma)


def clothing_contrast(c: Canvas) -> Measure:
    """Clothing distinct from the background (raw: ΔE76 of the median clothing colour to the blue)."""
    h, w = c.luma.shape
    chin_y = c.points[CHIN, 1]
    top = int(min(h - 2, chin_y + 0.35 * c.face_width))
    region = (slice(top, h), slice(0, w))
    person = c.rendered.alpha[region] > 0.9
    lab = c.lab[region][person]
    if lab.shape[0] < 50:  # no clothing in the frame to judge
        return Measure(
            "clothing_contrast", None, 100.0, True, None, f">= {c.standard.min_clothing_delta_e:g}"
        )
    median = np.median(lab, axis=0)
    raw = float(delta_e(median[None, None, :], c.standard.background_rgb)[0, 0])
    return _at_least("clothing_contrast", "clothing_like_background", raw, c.standard.min_clothing_delta_e)


def _old_background(c: Canvas) -> np.ndarray:
    """Pixels of the original background on the canvas (before recolouring), Lab, N×3."""
    background = (c.rendered.alpha < 0.05) & c.rendered.inside
    background = cv2.erode(background.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    src_lab = to_lab(c.rendered.source)
    pixels: np.ndarray = src_lab[background]
    return pixels


def background_colour(c: Canvas) -> Measure:
    """Album uploads: an ID photo on light blue already (raw: ΔE76 of the median background)."""
    pixels = _old_background(c)
    if pixels.shape[0] < 200:
        return Measure(
            "background_colour", None, 100.0, True, None, f"<= {c.standard.max_background_delta_e:g}"
        )
    median = np.median(pixels, axis=0)
    raw = float(delta_e(median[None, None, :], c.standard.background_rgb)[0, 0])
    return _at_most("background_colour", "background_not_blue", raw, c.standard.max_background_delta_e)


def background_uniformity(c: Canvas) -> Measure:
    """Album uploads: background uniform, no shadow or gradient (raw: lightness spread, P95 - P5)."""
    pixels = _old_background(c)
    if pixels.shape[0] < 200:
        return Measure(
            "background_uniformity", None, 100.0, True, None, f"<= {c.standard.max_background_spread:g}"
        )
    lightness = pixels[:, 0]
    raw = float(np.percentile(lightness, 95) - np.percentile(lightness, 5))
    return _at_most("background_uniformity", "background_not_uniform", raw, c.standard.max_background_spread)


AnalysisMeasure = Callable[[Analysis, PhotoStandard], Measure]
CanvasMeasure = Callable[[Canvas], Measure]

#: Measures that need only the face analysis, in the order a student should fix them.
ANALYSIS_MEASURES: tuple[AnalysisMeasure, ...] = (
    face_resolution,
    head_yaw,
    head_pitch,
    head_roll,
    eyes_open,
    mouth_closed,
)
#: Measures judged on the standardised canvas.
CANVAS_MEASURES: tuple[CanvasMeasure, ...] = (
    head_in_frame,
    body_in_frame,
    head_top,
    eye_line,
    face_width,
    face_centred,
    shoulders_level,
    ears_visible,
    eyebrows_visible,
    headwear,
    glasses_tint,
    glasses_glare,
    illumination_balance,
    face_brightness,
    overexposure,
    sharpness,
    colour_photo,
    clothing_contrast,
)
#: Only for photos picked from the album, which must already be light-blue ID photos.
ALBUM_MEASURES: tuple[CanvasMeasure, ...] = (background_colour, background_uniformity)


def placement_failed() -> Measure:
    """The head's proportions leave no placement inside every range (tall hat or hair, cut-off crown)."""
    return Measure(
        "placement", None, 0.0, False, "head_proportions", "head top, eye line and face width in range"
    )
