"""Quality measures of the CHSI photo standard, one unit each (the OFIQ pattern).

Every measure returns a raw value (its unit in the docstring), a 0-100 score, pass/fail against the
threshold in :class:`PhotoStandard`, and a stable reason code when it fails (the Chinese text is in
messages.py). Scores are 50 exactly at the threshold, 100 at twice the margin, so operators can sort
borderline photos. The measures read the shared pre-processing (:class:`Analysis`) and, once the photo
is placed, the standardised canvas (:class:`Rendered`): lighting, sharpness and coverings are judged
on what CHSI will receive.
"""

from __future__ import annotations

import functools
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
    luma,
)
from services.imaging.standardize import Placement, Rendered


@dataclass(frozen=True)
class Measure:
    """One measure's verdict; ``reason`` is None when it passed.

    ``advisory``: it failed, but inside the band where the standard leaves room (a smile, hair near
    the ears) or where the measure cannot be sure (residue, recapture): the photo is not refused, it
    goes on to the manual review with the reason shown (the console's quality report marks it ✗).
    """

    code: str
    raw: float | None
    score: float
    passed: bool
    reason: str | None
    threshold: str
    advisory: bool = False

    @property
    def refuses(self) -> bool:
        return not self.passed and not self.advisory


def _verdict(
    code: str, reason: str, raw: float, score: float, passed: bool, within_hard: bool, threshold: str
) -> Measure:
    """Pass; or fail as advice for the reviewer (inside the hard limit); or refuse."""
    advisory = not passed and within_hard
    return Measure(
        code, round(raw, 4), round(score, 1), passed, None if passed else reason, threshold, advisory
    )


def _at_least(
    code: str, reason: str, raw: float, threshold: float, unit: str = "", hard: float | None = None
) -> Measure:
    """Passes at ``raw >= threshold``; between ``hard`` and the threshold it is advisory (review)."""
    score = 100.0 if threshold <= 0 else float(np.clip(50.0 * raw / threshold, 0, 100))
    text = f">= {threshold:g}{unit}" + (f" (refused < {hard:g})" if hard is not None else "")
    return _verdict(code, reason, raw, score, raw >= threshold, hard is not None and raw >= hard, text)


def _at_most(
    code: str, reason: str, raw: float, threshold: float, unit: str = "", hard: float | None = None
) -> Measure:
    """Passes at ``raw <= threshold``; between the threshold and ``hard`` it is advisory (review)."""
    score = (
        float(np.clip(100.0 - 50.0 * raw / threshold, 0, 100))
        if threshold > 0
        else (100.0 if raw <= 0 else 0.0)
    )
    text = f"<= {threshold:g}{unit}" + (f" (refused > {hard:g})" if hard is not None else "")
    return _verdict(code, reason, raw, score, raw <= threshold, hard is not None and raw <= hard, text)


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
    """BT.601 luma, float32 0-255 (:func:`services.imaging.preprocess.luma`)."""
    return luma(rgb)


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
        fw = placement.face_width
        skin = np.zeros((h, w), np.uint8)
        for idx in (CHEEK_LEFT, CHEEK_RIGHT, NOSE_TIP):
            x, y = points[idx]
            cv2.circle(skin, (round(x), round(y)), max(2, round(0.06 * fw)), 1, -1)
        # Lab of those pixels only (read inside the circles' box, in the same order): the whole canvas
        # in Lab is computed when a measure needs it.
        x0, y0, bw, bh = cv2.boundingRect(skin)
        box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        skin_pixels = to_lab(rendered.rgb[box][skin[box].astype(bool)][:, None, :])[:, 0, :]
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
            skin_lab,
        )

    @functools.cached_property
    def face_luma(self) -> np.ndarray:
        """Luminance of the pixels inside the face oval (read by two measures)."""
        values: np.ndarray = self.luma[self.face_mask]
        return values

    @functools.cached_property
    def head_top_px(self) -> float:
        """The measured head top (:func:`measured_head_top`)."""
        return _measured_head_top(self)

    @property
    def face_width(self) -> float:
        return float(self.points[FACE_EDGE_RIGHT, 0] - self.points[FACE_EDGE_LEFT, 0])

    def box(self, cx: float, cy: float, half_w: float, half_h: float) -> tuple[slice, slice]:
        h, w = self.luma.shape
        x0, x1 = int(max(0, cx - half_w)), int(min(w, cx + half_w))
        y0, y1 = int(max(0, cy - half_h)), int(min(h, cy + half_h))
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def skin_share(self, region: tuple[slice, slice], lab: np.ndarray | None = None) -> float:
        """Share of a region's person pixels that look like this face's skin.

        Skin is judged by hue and relative chroma and lightness, not by absolute colour, so a cheek in
        shadow is still skin while black, grey or white hair is not (blond hair can pass as skin: a
        known limit). A region that is mostly not person (background) counts as no skin.
        """
        lab = to_lab(self.rendered.rgb[region]) if lab is None else lab  # the region's Lab, if known
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
    return _at_most(
        "head_yaw",
        "head_turned",
        abs(analysis.pose.yaw),
        standard.max_yaw_deg,
        "°",
        standard.max_yaw_refused_deg,
    )


def head_pitch(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Head raised or lowered (raw: degrees, |pitch|)."""
    assert analysis.pose is not None
    return _at_most(
        "head_pitch",
        "head_pitched",
        abs(analysis.pose.pitch),
        standard.max_pitch_deg,
        "°",
        standard.max_pitch_refused_deg,
    )


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
    return _at_most(
        "mouth_closed",
        "mouth_open",
        raw,
        standard.max_mouth_openness,
        hard=standard.max_mouth_openness_refused,
    )


def _spectral_peak(grey: np.ndarray, cx: float, cy: float) -> float:
    """The strongest isolated peak of the photo's spectrum over its neighbourhood (ratio; ~3 for a
    live photo). A screen's pixel grid, its moiré and a print's halftone are periodic: sharp peaks.

    On a square crop (≤ 256 px, native resolution) around the face, Hann-windowed; low frequencies
    (the scene) and JPEG's 8-px block frequencies are left out.
    """
    h, w = grey.shape[:2]
    n = min(256, h, w) // 2 * 2
    x0 = int(np.clip(cx - n // 2, 0, w - n))
    y0 = int(np.clip(cy - n // 2, 0, h - n))
    crop = grey[y0 : y0 + n, x0 : x0 + n].astype(np.float32)
    crop -= crop.mean()
    window, usable = _spectrum_masks(n)
    spectrum = cv2.dft(crop * window, flags=cv2.DFT_COMPLEX_OUTPUT)
    magnitude = np.fft.fftshift(cv2.magnitude(spectrum[..., 0], spectrum[..., 1]))
    ratio = magnitude / (cv2.blur(magnitude, (9, 9)) + 1e-3)
    return float(ratio[usable].max()) if usable.any() else 0.0


@functools.cache
def _spectrum_masks(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The Hann window, and the frequencies looked at: not the lowest, not JPEG's block harmonics."""
    window = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    yy, xx = np.mgrid[0:n, 0:n]
    u, v = xx - n // 2, yy - n // 2
    usable = np.hypot(u, v) > 0.08 * n
    for k in range(-4, 5):  # JPEG blocks: harmonics of n/8 on either axis
        usable &= (np.abs(u - k * n / 8) > 1.5) & (np.abs(v - k * n / 8) > 1.5)
    return window, usable


def _frame_sides(grey: np.ndarray) -> int:
    """How many sides of the photo hold a straight edge parallel to it across most of its length
    (a screen's bezel, a print's margin): the edge's mean signed gradient along the row or column,
    over the band's mean gradient, ≥ 5 (a live photo's sides read ≤ 2.5, a doorframe one side)."""
    step = max(1, grey.shape[1] // 360)  # every step-th pixel: straight long edges survive sampling
    g = grey[::step, ::step].astype(np.float32)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    h, w = g.shape
    sides = 0
    for band, axis, span in (
        (gy[: h // 4], 1, slice(int(0.15 * w), int(0.85 * w))),
        (gy[3 * h // 4 :], 1, slice(int(0.15 * w), int(0.85 * w))),
        (gx[:, : w // 4], 0, slice(int(0.15 * h), int(0.85 * h))),
        (gx[:, 3 * w // 4 :], 0, slice(int(0.15 * h), int(0.85 * h))),
    ):
        along = band[:, span] if axis == 1 else band[span, :]
        profile = np.abs(along.mean(axis=axis))
        if profile.max() / (np.abs(band).mean() + 1e-3) >= 5.0:
            sides += 1
    return sides


def recapture(analysis: Analysis, standard: PhotoStandard) -> Measure:
    """Not a photo of a screen or of a print (raw: the spectrum's strongest isolated peak).

    The seed forbids 翻拍 (any re-photographed picture). A live photo's spectrum is smooth (peaks
    ≤ 4); a screen's sub-pixel grid and moiré or a print's halftone put sharp peaks in it (5-14 on
    the labelled set). A peak alone may be a striped shirt or blinds: flagged for the review. A peak
    with the frame of a screen or a print around the picture (three sides) is refused.
    """
    face = analysis.faces[0] if analysis.faces else None
    rgb = analysis.photo.rgb
    h, w = rgb.shape[:2]
    cx, cy = (face.x + face.w / 2, face.y + face.h / 2) if face else (w / 2, h / 2)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # per pixel: the same as converting each crop
    raw = _spectral_peak(grey, cx, cy)
    framed = _frame_sides(grey) >= 3
    threshold = standard.max_recapture_peak
    text = f"<= {threshold:g} (refused >= {standard.max_recapture_peak_framed:g} with a frame)"
    score = float(np.clip(100.0 - 50.0 * raw / threshold, 0, 100))
    if raw <= threshold and not framed:
        return Measure("recapture", round(raw, 2), round(score, 1), True, None, text)
    refused = framed and raw >= standard.max_recapture_peak_framed
    return Measure(
        "recapture", round(raw, 2), round(min(score, 49.0), 1), False, "recaptured", text, not refused
    )


# --- measures on the canvas --------------------------------------------------------------------------


def face_centred(c: Canvas) -> Measure:
    """Head centred horizontally (raw: |face centre x - canvas centre|, canvas pixels)."""
    centre = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    raw = abs(float(centre) - c.standard.width_px / 2)
    return _at_most("face_centred", "face_off_centre", raw, c.standard.max_centre_offset_px, " px")


def measured_head_top(c: Canvas) -> float:
    """Head top on the canvas from the final matte: the crown over the central band of the face.

    Read by the head-top and headwear measures and the geometry: computed once per canvas."""
    return c.head_top_px


def _measured_head_top(c: Canvas) -> float:
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
    raw = int(np.count_nonzero(outside_person)) / outside_person.size  # the mean, exactly
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
    s = c.standard
    return _at_most(
        "shoulders_level",
        "shoulders_tilted",
        raw,
        s.max_shoulder_tilt_deg,
        "°",
        s.max_shoulder_tilt_refused_deg,
    )


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
    s = c.standard
    return _at_least(
        "ears_visible", "ears_covered", min(shares), s.min_ear_skin_share, hard=s.min_ear_skin_share_refused
    )


def eyebrows_visible(c: Canvas) -> Measure:
    """Eyebrows and eyes not covered by hair (raw: skin share just above the eyebrows, worse side)."""
    fw = c.face_width
    shares = []
    for brow in (BROW_LEFT, BROW_RIGHT):
        pts = c.points[list(brow)]
        cx, top = float(pts[:, 0].mean()), float(pts[:, 1].min())
        shares.append(c.skin_share(c.box(cx, top - 0.035 * fw, 0.1 * fw, 0.025 * fw)))
    s = c.standard
    return _at_least(
        "eyebrows_visible",
        "eyebrows_covered",
        min(shares),
        s.min_brow_skin_share,
        hard=s.min_brow_skin_share_refused,
    )


def _unnatural_hair_colour(lab: np.ndarray) -> float:
    """Share of Lab pixels in colours natural hair rarely has: blue/purple or green casts, or vivid."""
    a, b = lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    return float((((chroma >= 6) & ((b < 0) | (a < -15))) | (chroma >= 60)).mean())


def _orientation_coherence(luma: np.ndarray) -> np.ndarray:
    """Per-pixel coherence of the local gradient orientation (structure tensor, 0 = none, 1 = one)."""
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    tensor = cv2.GaussianBlur(cv2.merge([gx * gx, gy * gy, gx * gy]), (0, 0), 2.0)  # one pass, 3 channels
    jxx, jyy, jxy = cv2.split(tensor)
    coherence: np.ndarray = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-3)
    return coherence


def headwear(c: Canvas) -> Measure:
    """No hat, cap or headscarf (raw: how hair-like the crown's texture is, 0-1; by texture, not colour).

    Hair is made of strands: everywhere on the crown the local gradients line up (high orientation
    coherence of the structure tensor), whatever its colour — black, grey, blond, red or dyed blue —
    and whatever its style. Cloth, felt and knit are flat with isolated edges (seams, a badge, a
    band), so the mean coherence over the crown (the solid person between the head top and the top
    of the forehead) falls. Colours hair rarely has (navy, green, vivid) only confirm a low reading;
    a crown of skin colour is a bald or shaved head and is at most flagged. Readings just under the
    threshold go to the review flagged rather than refused (a smooth, short haircut is possible).
    """
    s = c.standard
    fw = c.face_width
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    top, forehead = measured_head_top(c), float(c.points[FOREHEAD, 1])
    threshold, hard = s.min_crown_hair_coherence, s.min_crown_hair_coherence_refused
    text = f">= {threshold:g} (refused < {hard:g})"
    region = c.box(cx, (top + forehead) / 2, 0.42 * fw, max(0.0, (forehead - top) / 2))
    solid = cv2.erode((c.rendered.alpha[region] > 0.98).astype(np.uint8), np.ones((9, 9), np.uint8))
    inner = solid.astype(bool)
    if inner.sum() < 300:  # no crown to judge
        return Measure("headwear", None, 100.0, True, None, text)
    raw = float(_orientation_coherence(c.luma[region])[inner].mean())
    score = float(np.clip(50.0 + 50.0 * (raw - threshold) / 0.13, 0, 100))
    if raw >= threshold:
        return Measure("headwear", round(raw, 4), round(score, 1), True, None, text)
    lab = to_lab(c.rendered.rgb[region])
    unnatural = _unnatural_hair_colour(lab[inner])
    skin = c.skin_share(region, lab)
    refused = (raw < hard or unnatural > s.max_headwear_share) and skin < 0.6
    return Measure("headwear", round(raw, 4), round(score, 1), False, "headwear", text, advisory=not refused)


def _cheek_luma(c: Canvas, idx: int) -> float:
    region = c.box(c.points[idx, 0], c.points[idx, 1], 0.07 * c.face_width, 0.07 * c.face_width)
    values = c.luma[region]
    return float(values.mean()) if values.size else 0.0


def illumination_balance(c: Canvas) -> Measure:
    """Even light on both cheeks, no yin-yang face (raw: darker / brighter cheek luminance)."""
    left, right = _cheek_luma(c, CHEEK_LEFT), _cheek_luma(c, CHEEK_RIGHT)
    raw = min(left, right) / max(left, right, 1e-6)
    s = c.standard
    return _at_least(
        "illumination_balance", "uneven_lighting", raw, s.min_cheek_balance, hard=s.min_cheek_balance_refused
    )


def face_brightness(c: Canvas) -> Measure:
    """Face neither too dark nor too bright (raw: mean face luminance, 0-255)."""
    raw = float(c.face_luma.mean()) if c.face_luma.size else 0.0
    s = c.standard
    m = _within("face_brightness", "face_too_dark", raw, s.min_face_luminance, s.max_face_luminance)
    if not m.passed and raw > s.max_face_luminance:
        m = Measure(m.code, m.raw, m.score, False, "face_too_bright", m.threshold)
    return m


def overexposure(c: Canvas) -> Measure:
    """No blown highlights on the face (raw: share of face pixels at luminance ≥ 250)."""
    values = c.face_luma
    raw = float((values >= 250).mean()) if values.size else 0.0
    return _at_most("overexposure", "face_overexposed", raw, c.standard.max_clipped_share)


def sharpness(c: Canvas) -> Measure:
    """Sharp, in focus (raw: variance of the Laplacian inside the face oval, canvas scale)."""
    # Only around the face (4 px beyond the oval's box): the Laplacian and the erosion read 1 and 3 px
    # around a pixel, so inside the oval both are what they are on the whole canvas.
    mask = c.face_mask.astype(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    around = (slice(max(0, y - 4), y + h + 4), slice(max(0, x - 4), x + w + 4))
    lap = cv2.Laplacian(c.luma[around], cv2.CV_32F, ksize=3)
    inner = cv2.erode(mask[around], np.ones((7, 7), np.uint8)).astype(bool)
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


def beautification(c: Canvas) -> Measure:
    """Not beautified (raw: fine texture of the cheeks and forehead / that of the eyes).

    The seed asks for 照片未经美颜处理. A beauty filter smooths skin and keeps the eyes, brows and lips
    sharp, so skin texture falls against the image's own sharpness, which the eyes show (a blurred or
    enlarged photo softens both alike). Package portraits read 0.18-0.57, the same portraits with
    skin smoothed 0.14-0.30: the ranges overlap, so this only flags (review) the clearest cases and
    never refuses. Warped geometry (slimmed faces) is not measured.
    """
    fw = c.face_width
    cx = (c.points[FACE_EDGE_LEFT, 0] + c.points[FACE_EDGE_RIGHT, 0]) / 2
    face = c.box(cx, float(c.points[NOSE_TIP, 1]), 0.7 * fw, 0.9 * fw)
    detail = np.zeros_like(c.luma)
    luma = c.luma[face]
    detail[face] = np.abs(luma - cv2.GaussianBlur(luma, (0, 0), 1.0))
    skin = []
    for idx in (CHEEK_LEFT, CHEEK_RIGHT):
        x, y = c.points[idx]
        skin.append(float(detail[c.box(x, y, 0.07 * fw, 0.07 * fw)].mean()))
    x, y = c.points[FOREHEAD]
    skin.append(float(detail[c.box(x, y + 0.08 * fw, 0.12 * fw, 0.04 * fw)].mean()))
    eyes = np.concatenate([detail[r].ravel() for r in _eye_regions(c)])
    raw = float(np.mean(skin) / eyes.mean()) if eyes.size and eyes.mean() > 0 else 1.0
    return _at_least("beautification", "beautified", raw, c.standard.min_skin_texture_ratio, hard=0.0)


def colour_photo(c: Canvas) -> Measure:
    """A colour photo, not black-and-white (raw: CIELAB chroma C* of the face skin)."""
    raw = float(np.hypot(c.skin_lab[1], c.skin_lab[2]))
    return _at_least("colour_photo", "not_colour", raw, c.standard.min_face_chroma)


def clothing_contrast(c: Canvas) -> Measure:
    """Clothing distinct from the background (raw: ΔE76 of the median clothing colour to the blue)."""
    h, w = c.luma.shape
    chin_y = c.points[CHIN, 1]
    top = int(min(h - 2, chin_y + 0.35 * c.face_width))
    # A median needs no more than every 2nd pixel in each direction; only those are converted to Lab.
    region = (slice(top, h, 2), slice(0, w, 2))
    person = c.rendered.alpha[region] > 0.9
    lab = to_lab(c.rendered.rgb[region][person][:, None, :])[:, 0, :]
    if lab.shape[0] < 13:  # no clothing in the frame to judge
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


def background_residue(c: Canvas) -> Measure:
    """No remnant of the old background beside the person (raw: residue pixels, canvas px).

    Blobs of the old background's colours the matte kept next to the silhouette, and light or dark
    rims along it (services/imaging/residue.py): those the rendering repaired plus those still there.
    A repaired edge above the threshold goes to the review flagged; a large one is refused.
    """
    r = c.rendered
    s = c.standard
    return _at_most(
        "background_residue",
        "background_residue",
        float(r.repaired_px + r.residue_px),
        s.max_residue_px,
        " px",
        s.max_residue_refused_px,
    )


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
    recapture,
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
    background_residue,
    beautification,
)
#: Only for photos picked from the album, which must already be light-blue ID photos.
ALBUM_MEASURES: tuple[CanvasMeasure, ...] = (background_colour, background_uniformity)


def placement_failed() -> Measure:
    """The head's proportions leave no placement inside every range (tall hat or hair, cut-off crown)."""
    return Measure(
        "placement", None, 0.0, False, "head_proportions", "head top, eye line and face width in range"
    )
