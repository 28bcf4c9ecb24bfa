"""Standardisation: place, crop, matte, recolour and encode the photo exactly to the CHSI standard.

1. **Placement** (:func:`place`): one similarity transform (rotation = the head's roll, one scale, a
   shift) from the photo to the 480×640 canvas, chosen so that the head top, the eye line and the face
   width all land inside the standard's ranges with a safety margin, as close as possible to the
   targets, preferring windows that stay inside the original photo.
2. **Rendering** (:func:`render`): the photo is warped once (pre-shrunk with area averaging when it is
   much larger, so nothing aliases); the segmentation mask is warped the same way and, where the
   model is unsure, matted from colour (each pixel against the nearest known person and background
   colours), smoothed by a fast guided filter and cleared of islands and slivers, so hair keeps its
   strands and no piece of the old background (a flag, a doorframe) survives beside the head.
3. **Recolouring**: the background becomes RGB(100, 197, 255) with colour decontamination: edge
   pixels take the matte's estimate of the person's colour, or have the nearby background's share
   replaced by the new colour, so no old-background tint is left on hair or shoulders.
4. **Encoding** (:func:`encode_jpeg`): baseline JPEG, 4:2:0, 300 dpi in the JFIF header, the highest
   quality ≥ 60 whose file is at most 40 KB (secant search, 2-4 encodes). Bytes are never padded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from services.imaging.config import PhotoStandard
from services.imaging.preprocess import (
    CHIN,
    FACE_OVAL,
    IRIS_LEFT,
    IRIS_RIGHT,
    MOUTH_CORNERS,
    NOSE_TIP,
    Analysis,
    apply_affine,
    invert_affine,
    plain,
)
from services.imaging.residue import find_residue, half_size, repair_residue


@dataclass(frozen=True)
class Placement:
    """Photo → canvas transform and the geometry it predicts (output pixels)."""

    matrix: np.ndarray
    scale: float
    head_top: float
    eye_line: float
    face_width: float
    roll_deg: float


def _to_canvas(analysis: Analysis, scale: float, eye_line: float, width: int) -> np.ndarray:
    assert analysis.aligned is not None
    place_m = np.array([[scale, 0, width / 2 - scale * analysis.face_centre_x], [0, scale, eye_line]])
    matrix: np.ndarray = place_m @ np.vstack([analysis.aligned, [0, 0, 1]])
    return matrix


def place(analysis: Analysis, standard: PhotoStandard) -> Placement | None:
    """The best placement inside every range, or None when the head's proportions allow none.

    A small grid search (scale × eye line) is exact enough and cheap: for each candidate the head
    top follows from the eye-to-crown distance, the face width from the scale, and a penalty counts
    the canvas border points that fall outside the original photo.
    """
    assert analysis.aligned is not None
    m = standard.placement_margin_px
    crown = -analysis.head_top  # eye line to head top, photo pixels (> 0)
    face = analysis.face_width
    if crown <= 0 or face <= 0:
        return None
    s_lo = (standard.face_width_min_px + m) / face
    s_hi = (standard.face_width_max_px - m) / face
    # The head top must fit too: top = E - s * crown with E and top inside their ranges.
    s_lo = max(s_lo, (standard.eye_line_min_px - standard.head_top_max_px + 2 * m) / crown)
    s_hi = min(s_hi, (standard.eye_line_max_px - standard.head_top_min_px - 2 * m) / crown)
    if s_lo > s_hi:
        return None
    # A DCT-reduced decode is never enlarged when it need not be: a finer decode would have been
    # sharper, and a face a little under the target width is still inside the range.
    if analysis.photo.reduction > 1 and s_lo <= 1.0:
        s_hi = min(s_hi, 1.0)
    scales = np.linspace(s_lo, s_hi, 41)[:, None]
    eyes = np.arange(standard.eye_line_min_px + m, standard.eye_line_max_px - m + 1, 2.0)[None, :]
    tops = eyes - scales * crown
    widths = scales * face * np.ones_like(eyes)
    feasible = (tops >= standard.head_top_min_px + m) & (tops <= standard.head_top_max_px - m)
    cost = (
        ((tops - standard.head_top_target_px) / 20.0) ** 2
        + ((eyes - standard.eye_line_target_px) / 25.0) ** 2
        + ((widths - standard.face_width_target_px) / 30.0) ** 2
    )
    cost = cost + 40.0 * _outside_share(analysis, scales, eyes, standard)
    cost = np.where(feasible, cost, np.inf)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    if not np.isfinite(cost[i, j]):
        return None
    scale, eye_line = float(scales[i, 0]), float(eyes[0, j])
    assert analysis.pose is not None
    return Placement(
        matrix=_to_canvas(analysis, scale, eye_line, standard.width_px),
        scale=scale,
        head_top=eye_line - scale * crown,
        eye_line=eye_line,
        face_width=scale * face,
        roll_deg=analysis.pose.roll,
    )


def _outside_share(
    analysis: Analysis, scales: np.ndarray, eyes: np.ndarray, standard: PhotoStandard
) -> np.ndarray:
    """Share of the canvas's side and bottom border points (below the eyes) outside the photo."""
    assert analysis.aligned is not None
    w, h = standard.width_px, standard.height_px
    height, width = analysis.photo.rgb.shape[:2]
    s = scales[:, :, None]  # (S, 1, 1)
    e = eyes[:, :, None]  # (1, E, 1)
    side = np.linspace(0.0, 1.0, 6)[None, None, :]
    # Canvas points per candidate: 9 on the bottom edge, 6 down each side from the eye line.
    xs = np.concatenate(
        [
            np.broadcast_to(np.linspace(0, w - 1, 9), (1, 1, 9)),
            np.zeros((1, 1, 6)),
            np.full((1, 1, 6), w - 1.0),
        ],
        axis=2,
    )
    ys_side = e + side * (h - 1 - e)
    ys = np.concatenate([np.full((1, eyes.shape[1], 9), h - 1.0), ys_side, ys_side], axis=2)
    ax = (xs - w / 2) / s + analysis.face_centre_x
    ay = (ys - e) / s
    back = invert_affine(analysis.aligned)
    px = back[0, 0] * ax + back[0, 1] * ay + back[0, 2]
    py = back[1, 0] * ax + back[1, 1] * ay + back[1, 2]
    outside = (px < 0) | (px > width - 1) | (py < 0) | (py > height - 1)
    share: np.ndarray = outside.mean(axis=2)
    return share


@dataclass
class Rendered:
    """The canvas before and after recolouring, with the refined alpha and where the photo reached."""

    source: np.ndarray  # uint8 RGB: the photo warped to the canvas, old background included
    alpha: np.ndarray  # float32 0-1: person
    inside: np.ndarray  # bool: canvas pixels that come from inside the original photo
    rgb: np.ndarray  # uint8 RGB: the standardised photo
    repaired_px: int = 0  # residue pixels of the old background repaired (residue.py)
    residue_px: int = 0  # residue pixels still found after the repair


def _warp_photo(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp with area-averaged pre-shrinking, so a 4× reduction does not alias (hair, fabric)."""
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    # Bilinear sampling at half size or more still averages each 2×2 block: no visible aliasing.
    if scale >= 0.5:
        return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Crop to the canvas's footprint in the photo, shrink it by area to ~1.25× the final scale, warp.
    w, h = size
    corners = apply_affine(invert_affine(matrix), np.array([[0, 0], [w, 0], [0, h], [w, h]], float))
    height, width = rgb.shape[:2]
    x0 = int(max(0, math.floor(corners[:, 0].min()) - 4))
    y0 = int(max(0, math.floor(corners[:, 1].min()) - 4))
    x1 = int(min(width, math.ceil(corners[:, 0].max()) + 4))
    y1 = int(min(height, math.ceil(corners[:, 1].max()) + 4))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    shrink = min(1.0, scale * 1.25)
    crop = rgb[y0:y1, x0:x1]
    small = cv2.resize(
        crop,
        (max(2, round((x1 - x0) * shrink)), max(2, round((y1 - y0) * shrink))),
        interpolation=cv2.INTER_AREA,
    )
    kx, ky = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
    to_small = np.array([[kx, 0, -kx * x0], [0, ky, -ky * y0], [0, 0, 1]])
    adjusted = matrix @ np.linalg.inv(to_small)
    return cv2.warpAffine(small, adjusted[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def guided_filter(
    guide: np.ndarray,
    src: np.ndarray,
    radius: int,
    eps: float,
    fine_guide: np.ndarray | None = None,
    needed: np.ndarray | None = None,
) -> np.ndarray:
    """He et al.'s guided filter with a colour guide: edges of ``src`` snap to edges of ``guide``.

    ``guide`` float32 H×W×3 in 0-1, ``src`` float32 H×W. The colour version tells hair from a
    background of similar brightness, which a grey guide cannot. With ``fine_guide`` (a larger copy
    of the guide) it is the *fast* guided filter (He & Sun 2015): the linear coefficients, which are
    smooth, are computed at ``guide``'s size and applied to ``fine_guide``, so the output has the
    fine guide's size and edges at a quarter of the cost.

    ``needed`` (bool, the output's size): only those output pixels are wanted; the per-pixel 3×3
    systems are then solved only where they reach them (the rest of the output is not meaningful).
    Each pixel's arithmetic is the same, so the wanted pixels are exactly what the whole would give.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(src)
    mean_ip = box(guide * src[..., None])
    reach = _coefficients_reaching(needed, guide.shape[:2], radius) if fine_guide is not None else None
    if reach is None:
        cov_ip = mean_ip - mean_i * mean_p[..., None]
        coef = _solve_sym3(_covariance(guide, mean_i, eps, box, None), cov_ip)
        offset = mean_p - (coef * mean_i).sum(axis=2)
    else:
        # The same per-pixel arithmetic, on the coefficient pixels that reach the wanted ones only.
        mi, mp = mean_i[reach], mean_p[reach]
        coef_r = _solve_sym3(_covariance(guide, mean_i, eps, box, reach), mean_ip[reach] - mi * mp[:, None])
        coef, offset = np.zeros_like(mean_i), np.zeros_like(mean_p)
        coef[reach] = coef_r
        offset[reach] = mp - (coef_r * mi).sum(axis=1)
    coef, offset = box(coef), box(offset)
    if fine_guide is not None:
        size = (fine_guide.shape[1], fine_guide.shape[0])
        coef = cv2.resize(coef, size, interpolation=cv2.INTER_LINEAR)
        offset = cv2.resize(offset, size, interpolation=cv2.INTER_LINEAR)
        guide = fine_guide
    if reach is None or needed is None:
        filtered: np.ndarray = np.einsum("ijk,ijk->ij", coef, guide) + offset
        return filtered
    filtered = np.zeros_like(offset)
    filtered[needed] = np.einsum("ij,ij->i", coef[needed], guide[needed]) + offset[needed]
    return filtered


def _covariance(
    guide: np.ndarray,
    mean_i: np.ndarray,
    eps: float,
    box: Callable[[np.ndarray], np.ndarray],
    where: np.ndarray | None,
) -> np.ndarray:
    """Per-pixel 3×3 covariance of the guide, regularised by eps (…×3×3), at ``where`` (bool) or everywhere."""
    mi = mean_i if where is None else mean_i[where]
    var = np.empty((*mi.shape[:-1], 3, 3), np.float32)
    for a in range(3):
        for b in range(a, 3):
            product = box(guide[..., a] * guide[..., b])
            v = (product if where is None else product[where]) - mi[..., a] * mi[..., b]
            var[..., a, b] = v
            var[..., b, a] = v
    var += np.eye(3, dtype=np.float32) * eps
    return var


def _coefficients_reaching(
    needed: np.ndarray | None, shape: tuple[int, ...], radius: int
) -> np.ndarray | None:
    """The coefficient pixels (at ``shape``) that the wanted fine pixels read, or None for all.

    Only for a fine grid exactly twice the coefficients' (bilinear reads the two nearest coarse
    pixels, within ±1 of x // 2), after the box filter of ``radius``; one pixel more for safety.
    """
    if needed is None:
        return None
    h, w = shape
    if needed.shape != (2 * h, 2 * w):
        return None
    coarse = (needed[0::2, 0::2] | needed[1::2, 0::2] | needed[0::2, 1::2] | needed[1::2, 1::2]).astype(
        np.uint8
    )
    size = 2 * (radius + 2) + 1
    reach: np.ndarray = cv2.dilate(coarse, np.ones((size, size), np.uint8)).astype(bool)
    return reach


def _solve_sym3(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve per-pixel symmetric 3×3 systems by the adjugate: ~10× faster than ``np.linalg.solve``."""
    a, b_, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    i00, i01, i02 = d * f - e * e, c * e - b_ * f, b_ * e - c * d
    i11, i12, i22 = a * f - c * c, b_ * c - a * e, a * d - b_ * b_
    det = a * i00 + b_ * i01 + c * i02
    x, y, z = b[..., 0], b[..., 1], b[..., 2]
    solved: np.ndarray = (
        np.stack(
            [i00 * x + i01 * y + i02 * z, i01 * x + i11 * y + i12 * z, i02 * x + i12 * y + i22 * z], axis=-1
        )
        / det[..., None]
    )
    return solved


# Matting at half the canvas (240×320): where the segmentation is unsure, each pixel's alpha comes
# from its colour against the nearest known person and background colours around it.
_KNOWN_FG, _KNOWN_BG = 0.9, 0.1
# The colour samples are searched on a quarter-canvas grid (120×160), at these offsets: the pixel,
# a ring at 2 px and a ring at 4 px (8 and 16 canvas px). Known regions are large, so a sparse
# pattern finds their colours; a dense per-pixel search at half size cost 25× more.
_SAMPLE_OFFSETS = ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2), (-4, 0), (4, 0), (0, -4), (0, 4),
                   (-3, -3), (-3, 3), (3, -3), (3, 3))  # fmt: skip
_SAMPLE_RADIUS = 4


def _nearest_known(
    rgb: np.ndarray, knowns: tuple[np.ndarray, ...], ys: np.ndarray, xs: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each pixel (ys, xs), the colour of the ``known`` pixel nearby closest to its own colour.

    Returns, for each mask in ``knowns``, (colours N×3, found N: a known pixel lies at one of the
    offsets). The nearest colour, not the local mean: a background of several colours (a flag, a
    bookcase) is explained by one of its colours, which a mean of them never is. The colours at the
    offsets and their distances are read once for all the masks; on a tie the first offset wins.
    """
    r = _SAMPLE_RADIUS
    w = rgb.shape[1]
    stride = w + 2 * r
    flat_rgb = cv2.copyMakeBorder(rgb, r, r, r, r, cv2.BORDER_REPLICATE).reshape(-1, 3)
    steps = np.array([dy * stride + dx for dy, dx in _SAMPLE_OFFSETS])
    index = ((ys + r) * stride + (xs + r))[None, :] + steps[:, None]  # offsets × pixels
    colour = flat_rgb.take(index, axis=0)
    diff = colour - rgb[ys, xs]
    distance = np.einsum("kij,kij->ki", diff, diff)
    pixels = np.arange(len(ys))
    found = []
    for known in knowns:
        padded = cv2.copyMakeBorder(known.astype(np.uint8), r, r, r, r, cv2.BORDER_CONSTANT, value=0)
        d = np.where(padded.ravel().take(index) != 0, distance, np.inf)
        best = np.argmin(d, axis=0)
        hit = np.isfinite(d[best, pixels])
        found.append((np.where(hit[:, None], colour[best, pixels], np.float32(0.0)), hit))
    return found


def _colour_alpha(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alpha in the segmentation's uncertain band from colour, and the person's colour there.

    Each unsure pixel is projected onto the line between its nearest known person colour F and
    nearest known background colour B (``I = aF + (1 - a)B``). Where F and B are too alike to tell
    apart, the segmentation's value is kept. The person's colour is ``(I - (1 - a)B) / a`` where that
    model explains the pixel, else F itself: so no colour of the old background is carried into the
    edge even where alpha is wrong. Returns (alpha, person colour, unsure mask).
    """
    kernel = np.ones((3, 3), np.uint8)
    unsure = ~(
        cv2.erode((mask > _KNOWN_FG).astype(np.uint8), kernel).astype(bool)
        | cv2.erode((mask < _KNOWN_BG).astype(np.uint8), kernel).astype(bool)
    )
    fore = np.zeros_like(rgb)
    ys, xs = np.nonzero(unsure)
    alpha = mask.copy()
    if ys.size == 0:
        return alpha, fore, unsure
    h, w = mask.shape
    q_rgb = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    q_mask = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    q_fg = cv2.erode((q_mask > _KNOWN_FG).astype(np.uint8), kernel).astype(bool)
    q_bg = cv2.erode((q_mask < _KNOWN_BG).astype(np.uint8), kernel).astype(bool)
    # Samples for the quarter pixels under the unsure band, read back at half size by position.
    band = cv2.dilate(
        cv2.resize(unsure.astype(np.uint8), (w // 2, h // 2), interpolation=cv2.INTER_NEAREST), kernel
    )
    qy, qx = np.nonzero(band)
    slot = np.full((h // 2, w // 2), -1, np.int64)
    slot[qy, qx] = np.arange(len(qy))
    at = slot[np.minimum(ys // 2, h // 2 - 1), np.minimum(xs // 2, w // 2 - 1)]
    samples = [
        (colour[at], found[at] & (at >= 0)) for colour, found in _nearest_known(q_rgb, (q_fg, q_bg), qy, qx)
    ]
    (f, has_f), (b, has_b) = samples
    pixel = rgb[ys, xs]
    fb = f - b
    sep2 = (fb**2).sum(axis=1)
    a = np.clip(((pixel - b) * fb).sum(axis=1) / np.maximum(sep2, 1e-6), 0.0, 1.0)
    residual = np.sqrt(((pixel - (a[:, None] * f + (1 - a[:, None]) * b)) ** 2).sum(axis=1))
    sep = np.sqrt(sep2)
    # Trust colour when F and B differ clearly and explain the pixel; else the segmentation.
    trust = np.clip((sep - 0.05) / 0.12, 0.0, 1.0) * np.clip(
        1.5 - 2.0 * residual / np.maximum(sep, 1e-6), 0.0, 1.0
    )
    # No person colour nearby: the pixel is background the segmentation half-believed in.
    a = np.where(has_f, a, 0.0)
    trust = np.where(has_f & has_b, trust, np.where(has_f, 0.0, 1.0))
    # Where colour cannot tell, a steeper segmentation: its half-sure fringe (0.2-0.4) is usually old
    # background that borders the person, and hair strands are where colour does tell.
    fallback = np.clip((mask[ys, xs] - 0.5) * 2.5 + 0.5, 0.0, 1.0)
    alpha[ys, xs] = trust * a + (1.0 - trust) * fallback
    unmixed = np.clip((pixel - (1 - a[:, None]) * b) / np.maximum(a, 0.05)[:, None], 0.0, 1.0)
    fore[ys, xs] = np.where(has_f[:, None], trust[:, None] * unmixed + (1 - trust[:, None]) * f, pixel)
    return alpha, fore, unsure


def _drop_thin_unsure(alpha: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Remove thin solid slivers (≤ 4 canvas px wide) where the segmentation itself was unsure.

    A flagpole or a stripe of the old background beside the head, coloured like something on the
    person (gold braid, a white cap, dark cloth), survives the colour test as a sliver; the
    person's own outline is broad, and hair strands are soft (alpha < 0.5), so neither is touched.
    """
    solid = (alpha > 0.5).astype(np.uint8)
    opened = cv2.morphologyEx(solid, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    sliver = (solid > opened) & (mask < 0.75)
    if sliver.any():
        alpha = alpha.copy()
        alpha[sliver] = 0.0
    return alpha


def _keep_person(alpha: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """Drop matte islands not joined to the person (fragments of the old background).

    The component of ``alpha > 0.5`` that holds ``seed`` (the face), grown by a few pixels so its own
    soft edge stays, bounds the matte; a seed outside the person falls back to the largest component.
    """
    solid = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if count <= 2:
        return alpha
    x, y = seed
    label = int(labels[y, x]) if 0 <= y < labels.shape[0] and 0 <= x < labels.shape[1] else 0
    if label == 0:
        label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = cv2.dilate((labels == label).astype(np.uint8), np.ones((5, 5), np.uint8))
    kept: np.ndarray = alpha * keep
    return kept


def _refine_alpha(
    source: np.ndarray, coarse: np.ndarray, seed: tuple[int, int], half_source: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matte: colour sampling where the segmentation is unsure, a guided filter, no islands.

    Runs at half resolution and is upsampled (alpha and the old background are smooth at that
    scale; the guided filter's coefficients carry the edges). Returns alpha (full size), and at half
    size the person's colour (0-255) where the segmentation was unsure, and that region.
    ``half_source``: ``source`` already shrunk to half size (:func:`half_size`), if known.
    """
    h, w = coarse.shape
    if half_source is None:
        half_source = half_size(source)
    small_rgb = half_source.astype(np.float32) / 255.0
    small_mask = cv2.resize(coarse, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    sampled, fore, unsure = _colour_alpha(small_rgb, small_mask)
    # Fast guided filter: coefficients at quarter size (radius 1 = 12 canvas px), edges at half.
    quarter = (w // 4, h // 4)
    refined = guided_filter(
        cv2.resize(small_rgb, quarter, interpolation=cv2.INTER_AREA),
        cv2.resize(sampled.astype(np.float32), quarter, interpolation=cv2.INTER_AREA),
        radius=1,
        eps=1e-3,
        fine_guide=small_rgb,
        needed=unsure & (small_mask <= 0.97) & (small_mask >= 0.03),
    )
    refined = np.where(unsure, refined, small_mask)
    # The segmentation is confident far from the edge: keep those regions solid.
    refined[small_mask > 0.97] = 1.0
    refined[small_mask < 0.03] = 0.0
    half = np.clip((refined - 0.1) / 0.8, 0.0, 1.0).astype(np.float32)
    half = _drop_thin_unsure(half, small_mask)
    half = _keep_person(half, (seed[0] // 2, seed[1] // 2))
    alpha: np.ndarray = cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)
    return alpha, fore * 255.0, unsure


def recolour(
    source: np.ndarray,
    alpha: np.ndarray,
    background: tuple[int, int, int],
    foreground: np.ndarray | None = None,
    sampled: np.ndarray | None = None,
) -> np.ndarray:
    """Replace the old background by ``background``, removing its colour from the edge pixels.

    A pixel is ``I = a F + (1 - a) B_old``; the result is ``a F + (1 - a) B_new``. Where the matte
    sampled colours (``sampled``, at any size) ``F`` is its estimate of the
    person's colour (``foreground``); elsewhere on the edge the result is ``I + (1 - a)(B_new -
    B_old)`` with ``B_old`` the local mean of nearby background pixels.
    """
    h, w = alpha.shape
    new = np.array(background, np.float32)
    # Pure background is exactly the reference colour (no texture of the old wall left), the solid
    # person is untouched; only the edge band (a few % of the canvas) is computed.
    result = source.copy()
    cv2.copyTo(plain(source.shape, tuple(background)), (alpha < 0.02).astype(np.uint8), result)
    ys, xs = np.nonzero((alpha >= 0.02) & (alpha < 1.0))
    if ys.size == 0:
        return result
    # The old background is a smooth field: estimate it at quarter size, read it where needed.
    small_img = cv2.resize(source, (w // 4, h // 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    weight = cv2.resize((1.0 - alpha) ** 2, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    num = cv2.boxFilter(small_img * weight[..., None], -1, (11, 11), borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(weight, -1, (11, 11), borderType=cv2.BORDER_REFLECT)
    old = (num / np.maximum(den, 1e-4)[..., None])[ys // 4, xs // 4]
    a = alpha[ys, xs, None]
    edge = source[ys, xs].astype(np.float32) + (1.0 - a) * (new - old)
    if foreground is not None and sampled is not None:
        # Bilinear, so the half-size estimate leaves no 2×2 blocks on the edge.
        fore = cv2.resize(foreground, (w, h), interpolation=cv2.INTER_LINEAR)[ys, xs]
        share = cv2.resize(sampled.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)[ys, xs, None]
        edge = share * (a * fore + (1.0 - a) * new) + (1.0 - share) * edge
    result[ys, xs] = np.clip(edge + 0.5, 0, 255).astype(np.uint8)
    return result


def head_features(
    landmarks: np.ndarray, placement: Placement, size: tuple[int, int]
) -> tuple[int, np.ndarray, np.ndarray]:
    """On the canvas: the chin's row, the eyes and mouth (not colours of hair or skin), the face oval."""
    points = apply_affine(placement.matrix, landmarks)
    features = np.zeros((size[1], size[0]), np.uint8)
    radius = max(3, round(0.13 * placement.face_width))
    for idx in (IRIS_LEFT, IRIS_RIGHT):
        cv2.circle(features, (round(points[idx, 0]), round(points[idx, 1])), radius, 1, -1)
    mouth = points[list(MOUTH_CORNERS)]
    centre = mouth.mean(axis=0)
    half = (
        round(abs(mouth[1, 0] - mouth[0, 0]) / 2 + 0.05 * placement.face_width),
        round(0.1 * placement.face_width),
    )
    cv2.ellipse(features, (round(centre[0]), round(centre[1])), half, 0, 0, 360, 1, -1)
    face = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(face, [np.round(points[list(FACE_OVAL)]).astype(np.int32)], 1)
    return round(float(points[CHIN, 1])), features.astype(bool), face.astype(bool)


def render(analysis: Analysis, placement: Placement, standard: PhotoStandard) -> Rendered:
    """Warp the photo and its mask onto the canvas and recolour the background."""
    assert analysis.window is not None and analysis.mask is not None and analysis.landmarks is not None
    size = (standard.width_px, standard.height_px)
    photo = analysis.photo.rgb
    source = _warp_photo(photo, placement.matrix, size)
    window_to_canvas = placement.matrix @ np.vstack([invert_affine(analysis.window), [0, 0, 1]])
    coarse = cv2.warpAffine(
        analysis.mask, window_to_canvas, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    nose = apply_affine(placement.matrix, analysis.landmarks[[NOSE_TIP]])[0]
    # The half-size canvas is where the matte and the residue search work: shrunk once for both.
    half_source = half_size(source)
    alpha, fore, sampled = _refine_alpha(source, coarse, (round(nose[0]), round(nose[1])), half_source)
    ones = np.ones(photo.shape[:2], np.uint8)
    inside = cv2.warpAffine(ones, placement.matrix, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    rgb = recolour(source, alpha, standard.background_rgb, fore, sampled)
    # Old background the matte kept (blobs of its colours, light or dark rims): repaired here, and
    # whatever the repair could not remove is measured again by quality.background_residue.
    chin, features, face = head_features(analysis.landmarks, placement, size)
    # Found and repaired; where a blob reached the band's inner limit it is looked for again after the
    # repair (what that finds is repaired too and counted as left: quality.background_residue).
    found = find_residue(
        source, alpha, rgb, inside, standard.background_rgb, chin, features, face, half_source=half_source
    )
    repaired, left = found.pixels, 0
    if standard.repair_residue and found.pixels:
        alpha, rgb = repair_residue(source, alpha, rgb, found, standard.background_rgb)
        if found.reaches_deeper:
            again = find_residue(
                source,
                alpha,
                rgb,
                inside,
                standard.background_rgb,
                chin,
                features,
                face,
                half_source=half_source,
            )
            left = again.pixels
            alpha, rgb = repair_residue(source, alpha, rgb, again, standard.background_rgb)
    elif not standard.repair_residue:
        repaired, left = 0, found.pixels
    return Rendered(source=source, alpha=alpha, inside=inside, rgb=rgb, repaired_px=repaired, residue_px=left)


# --- encoding ----------------------------------------------------------------------------------------


def _set_jfif_density(jpeg: bytes, dpi: int) -> bytes:
    """Write ``dpi`` into the JFIF APP0 header OpenCV emits (units = dots per inch)."""
    if jpeg[2:4] != b"\xff\xe0" or jpeg[6:11] != b"JFIF\x00":
        raise ValueError("encoder did not write a JFIF header")
    return jpeg[:13] + bytes([1]) + dpi.to_bytes(2, "big") + dpi.to_bytes(2, "big") + jpeg[18:]


def _encode(bgr: np.ndarray, quality: int) -> bytes:
    params = [
        cv2.IMWRITE_JPEG_QUALITY, quality,
        cv2.IMWRITE_JPEG_OPTIMIZE, 1,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    ]  # fmt: skip
    ok, buffer = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


# Where the quality search starts (typical for a 480×640 portrait at 40 KB), and how fast the file
# grows with quality before two sizes are known (d ln(bytes) / d quality, measured 0.02-0.06).
_FIRST_QUALITY = 85
_LOG_SIZE_SLOPE = 0.035


def encode_jpeg(rgb: np.ndarray, standard: PhotoStandard) -> tuple[bytes, int]:
    """The highest quality in [min, max] whose file fits ``file_max_bytes``; 300 dpi; no padding.

    A secant search on log(size) against quality: start at a typical quality, predict the quality
    that hits the limit from the sizes seen so far, and stop once the answer is bracketed by a
    quality that fits and the next one that does not (usually 3 encodes, ~3 ms each). If even the
    minimum quality is too large, that file is returned: its size is reported, never faked.
    """
    limit = standard.file_max_bytes
    lo_q, hi_q = standard.jpeg_min_quality, standard.jpeg_max_quality
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    files: dict[int, bytes] = {}
    fits: int | None = None  # the highest quality known to fit
    big: int | None = None  # the lowest quality known not to fit
    q = min(max(_FIRST_QUALITY, lo_q), hi_q)
    while True:
        files[q] = _encode(bgr, q)
        if len(files[q]) <= limit:
            fits = q if fits is None else max(fits, q)
        else:
            big = q if big is None else min(big, q)
        if fits is not None and (fits == hi_q or big == fits + 1):
            return _set_jfif_density(files[fits], standard.dpi), fits
        if big == lo_q:
            return _set_jfif_density(files[lo_q], standard.dpi), lo_q
        q = _next_quality(files, fits, big, limit, lo_q, hi_q)


def _next_quality(
    files: dict[int, bytes], fits: int | None, big: int | None, limit: int, lo_q: int, hi_q: int
) -> int:
    """The quality predicted to hit ``limit``, strictly inside the bracket (so the search ends)."""
    log_limit = math.log(limit)
    if fits is not None and big is not None:
        lo_size, hi_size = math.log(len(files[fits])), math.log(len(files[big]))
        guess = fits + (log_limit - lo_size) / max(hi_size - lo_size, 1e-9) * (big - fits)
        return min(max(math.floor(guess), fits + 1), big - 1)
    known = sorted(files)
    slope = _LOG_SIZE_SLOPE
    if len(known) >= 2:
        a, b = known[0], known[-1]
        slope = max((math.log(len(files[b])) - math.log(len(files[a]))) / (b - a), 1e-3)
    if fits is not None:  # everything tried fits: go up
        guess = fits + (log_limit - math.log(len(files[fits]))) / slope
        return min(max(math.floor(guess), fits + 1), hi_q)
    assert big is not None  # everything tried is too big: go down
    guess = big - (math.log(len(files[big])) - log_limit) / slope
    return max(min(math.floor(guess), big - 1), lo_q)
