"""Remnants of the old background beside the person on the standardised canvas: found, then repaired.

Two kinds, both measured on the canvas from the matte and the photo before recolouring:

- **blobs**: pixels the matte kept (alpha > 0.5) near the silhouette whose original colour is one of
  the old background's and none of the person's own (a pale window above the head, a sign's letters
  in the hair, a chair back at the shoulder). Colours are compared as 32-level RGB histograms with a
  one-bin tolerance: the person's from the matte's interior deeper than the band looked at (hair,
  skin, clothes: so a kept blob never vouches for its own colour), the old
  background's from where the matte is sure it is background. A colour both have is not residue
  (nothing can tell them apart there, and nothing looks wrong either).
- **rims**: edge pixels (0.15 < alpha < 0.95) lighter than both the person next to them and the new
  background (a bright wall mixed into an enlarged edge), or darker than both (a dark doorway).

The repair drops blobs from the matte (they become the new background) and repaints rim pixels as the
mix of the nearby person colour and the new background that their alpha says they are. The measure
(quality.background_residue) re-finds what is left after the repair.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.imaging.preprocess import luma as _luma
from services.imaging.preprocess import plain

# RGB histogram bins: 32 levels a channel (a bin is 8 wide), one bin of tolerance around each.
_LEVELS = 32
# A colour belongs to a region when at least this share of the region's pixels (or 4) fall in its bins.
_MIN_SHARE = 0.0004
# Residue is looked for this far (canvas px) inside the silhouette; blobs smaller than this are noise.
_BAND_PX = 32
_MIN_BLOB_PX = 12
# Pieces judged against the person's colours elsewhere, largest first.
_MAX_PIECES = 6
# A rim pixel is this much lighter (or darker) in luma than both its sides.
_RIM_LIGHTER, _RIM_DARKER = 12.0, 24.0


@dataclass(frozen=True)
class Residue:
    """Where the old background is left: blob and rim pixels (bool masks on the canvas)."""

    blobs: np.ndarray
    rims: np.ndarray  # what the repair repaints: the rim found, grown by a pixel within the edge
    pixels: int  # residue pixels found (blobs and rims as found, before the rims are grown)
    # A blob reaches the inner limit of the band looked at: it may go on deeper, look again after
    # the repair (the band then starts where this blob was).
    reaches_deeper: bool = False


def _bins(rgb: np.ndarray) -> np.ndarray:
    q = (rgb // (256 // _LEVELS)).astype(np.int32)
    index: np.ndarray = (q[..., 0] * _LEVELS + q[..., 1]) * _LEVELS + q[..., 2]
    return index


def _palette(bins: np.ndarray) -> np.ndarray:
    """Which colour bins a region holds (bool, _LEVELS³), dilated by one bin in each channel."""
    return _present(np.bincount(bins, minlength=_LEVELS**3), len(bins))


def _present(counts: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(_LEVELS**3, bool)
    grown = (counts >= max(4, _MIN_SHARE * n)).reshape(_LEVELS, _LEVELS, _LEVELS)
    for axis in range(3):  # a 3×3×3 dilation, one axis at a time
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        shifted = grown.copy()
        shifted[tuple(lower)] |= grown[tuple(upper)]
        shifted[tuple(upper)] |= grown[tuple(lower)]
        grown = shifted
    dilated: np.ndarray = grown.ravel()
    return dilated


def _drop_specks(mask: np.ndarray, min_px: int) -> np.ndarray:
    """The mask without its connected pieces smaller than ``min_px``."""
    if not mask.any():
        return mask
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < min_px
    small[0] = True
    kept: np.ndarray = ~small[labels]
    return kept


def _pieces(mask: np.ndarray, other: np.ndarray, min_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The connected pieces of ``mask`` that touch ``other`` (8-neighbourhood) and have at least
    ``min_px`` pixels. Returns their mask, the labels of ``mask``'s pieces, and the stats rows of the
    kept pieces in label order, each with its label in a last column.

    One labelling: keeping or dropping whole pieces leaves the others' shapes and their order (each
    one's first pixel) as they were, so this is :func:`_drop_specks` of the pieces touching ``other``,
    labelled again.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    near = cv2.dilate(other.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[near & mask])] = True
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    ids = np.nonzero(keep)[0]
    kept: np.ndarray = keep[labels]
    return kept, labels, np.column_stack([stats[ids], ids.astype(stats.dtype)])  # int32, as the stats


def _vouched_dropped(
    blobs: np.ndarray,
    labels: np.ndarray,
    pieces: np.ndarray,
    bins: np.ndarray,
    own: np.ndarray,
    chin_row: int | None,
    band_px: int,
) -> np.ndarray:
    """Drop the blobs whose colours the person shows elsewhere, away from the blob itself.

    A thin part of the person (a white cap's crown, a collar) is too thin to reach the deep interior
    the first test trusts; if the same colours appear on the solid person (``own``) outside the
    blob's box grown by the band (above the chin for a blob beside the head), it is the person, not
    residue. The largest pieces are judged (the rest stay residue). ``labels`` and ``pieces``: the
    blobs' labelling and their stats rows (label last) from :func:`_pieces`.
    """
    if len(pieces) == 0:
        return blobs
    kept = blobs.copy()
    head = own.copy()
    if chin_row is not None and 0 < chin_row < own.shape[0]:
        head[chin_row:] = False
    totals = {
        False: np.bincount(bins[own], minlength=_LEVELS**3),
        True: np.bincount(bins[head], minlength=_LEVELS**3),
    }
    for row in np.argsort(-pieces[:, cv2.CC_STAT_AREA])[:_MAX_PIECES]:
        x, y, bw, bh = (int(v) for v in pieces[row, :4])
        label = pieces[row, -1]
        beside_head = chin_row is not None and y + bh / 2 < chin_row
        region = head if beside_head else own
        box = (slice(max(0, y - band_px), y + bh + band_px), slice(max(0, x - band_px), x + bw + band_px))
        inside_box = np.bincount(bins[box][region[box]], minlength=_LEVELS**3)
        elsewhere = totals[beside_head] - inside_box
        n = int(elsewhere.sum())
        if n < 50:
            continue
        piece = (slice(y, y + bh), slice(x, x + bw))
        mine = labels[piece] == label
        if _present(elsewhere, n)[bins[piece][mine]].mean() > 0.5:
            kept[piece][mine] = False
    return kept


def _find(
    source: np.ndarray,
    alpha: np.ndarray,
    rgb: np.ndarray,
    inside: np.ndarray,
    background: tuple[int, int, int],
    chin_row: int | None,
    features: np.ndarray | None,
    face: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Blobs and rims on a half-size canvas (sizes below are half-size pixels), and whether a blob
    reaches the inner limit of the band."""
    band_px, min_px = _BAND_PX // 2, max(3, _MIN_BLOB_PX // 4)
    person = alpha > 0.5
    solid = cv2.erode((alpha > 0.98).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    # The person's own colours come from deeper than the band, so a kept blob never vouches for itself.
    deep = cv2.erode(solid.astype(np.uint8), np.ones((2 * band_px + 1,) * 2, np.uint8)).astype(bool)
    sure_bg = cv2.erode(((alpha < 0.02) & inside).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outside = cv2.dilate((~person).astype(np.uint8), np.ones((2 * band_px + 1,) * 2, np.uint8)).astype(bool)
    band = person & outside & inside
    if face is not None:
        band &= ~face
    blobs = np.zeros(alpha.shape, bool)
    if band.any() and np.count_nonzero(sure_bg) >= 50 and np.count_nonzero(deep) >= 50:
        bins = _bins(source)
        ys, xs = np.nonzero(band)
        index = bins[ys, xs]
        own = _palette(bins[deep])[index]
        skin_and_hair = solid & ~features if features is not None else solid
        if chin_row is not None and 0 < chin_row < alpha.shape[0]:
            head = deep.copy()
            head[chin_row:] = False
            if features is not None:
                head &= ~features
            if np.count_nonzero(head) >= 50:
                above = ys < chin_row
                own[above] = _palette(bins[head])[index[above]]
        suspect = _palette(bins[sure_bg])[index] & ~own
        if suspect.any():
            blobs[ys[suspect], xs[suspect]] = True
            blobs, labels, pieces = _pieces(blobs, ~person, min_px)
            blobs = _vouched_dropped(blobs, labels, pieces, bins, skin_and_hair, chin_row, band_px)
    # Rims: compare each edge pixel with the person just inside it and the new background.
    edge = (alpha > 0.15) & (alpha < 0.95) & inside
    rims = np.zeros(alpha.shape, bool)
    if edge.any() and solid.any():
        luma = _luma(rgb)
        near_solid = (alpha > 0.9).astype(np.float32)
        num = cv2.boxFilter(luma * near_solid, -1, (5, 5), normalize=False)
        den = cv2.boxFilter(near_solid, -1, (5, 5), normalize=False)
        inner = num / np.maximum(den, 1e-3)
        new = float(_luma(np.array([[background]], np.uint8))[0, 0])
        light = luma > np.maximum(inner, new) + _RIM_LIGHTER
        dark = luma < np.minimum(inner, new) - _RIM_DARKER
        rims = _drop_specks(edge & (den > 1) & (light | dark), min_px)  # a line along the edge, not a speck
    inner_limit = cv2.dilate((~person).astype(np.uint8), np.ones((2 * band_px - 3,) * 2, np.uint8)).astype(
        bool
    )
    return blobs, rims, bool((blobs & ~inner_limit).any())


def half_size(image: np.ndarray) -> np.ndarray:
    """The canvas at half size (area average), where the matte and the residue search work."""
    h, w = image.shape[:2]
    small: np.ndarray = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return small


def find_residue(
    source: np.ndarray,
    alpha: np.ndarray,
    rgb: np.ndarray,
    inside: np.ndarray,
    background: tuple[int, int, int],
    chin_row: int | None = None,
    features: np.ndarray | None = None,
    face: np.ndarray | None = None,
    *,
    half_source: np.ndarray | None = None,
) -> Residue:
    """Blobs of old-background colour kept by the matte, and light or dark rims, near the silhouette.

    Above ``chin_row`` the person's colours are the head's alone (hair and skin, leaving out
    ``features``: the eyes and the mouth, whose whites are no colour of hair or skin), so a white
    shirt, a silver collar or a smile does not vouch for a pale window beside the hair. ``face`` (the
    face oval) is the person by definition: nothing in it is residue. A blob must touch the matte's
    outside: residue lies beside the person, never enclosed in it. Judged at half size (the matte's
    own resolution), the masks returned at full size. ``half_source``: ``source`` already at half size
    (:func:`half_size`), if known.
    """
    h, w = alpha.shape
    half = (w // 2, h // 2)

    def shrink(mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        small: np.ndarray = cv2.resize(mask.astype(np.uint8), half, interpolation=cv2.INTER_NEAREST).astype(
            bool
        )
        return small

    blobs, rims, deeper = _find(
        half_size(source) if half_source is None else half_source,
        cv2.resize(alpha, half, interpolation=cv2.INTER_AREA),
        cv2.resize(rgb, half, interpolation=cv2.INTER_AREA),
        shrink(inside),  # type: ignore[arg-type]
        background,
        None if chin_row is None else chin_row // 2,
        shrink(features),
        shrink(face),
    )

    def grow(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.zeros((h, w), bool)
        big: np.ndarray = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(
            bool
        )
        return big

    # A rim found at half size is a line 1-2 px wide at full size: grown by a pixel within the edge.
    blobs_full, rims_found = grow(blobs), grow(rims)
    rims_full = cv2.dilate(rims_found.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pixels = int(np.count_nonzero(blobs_full)) + int(np.count_nonzero(rims_found))
    rims_full &= (alpha > 0.1) & (alpha < 0.98)
    return Residue(blobs=blobs_full, rims=rims_full, pixels=pixels, reaches_deeper=deeper)


def repair_residue(
    source: np.ndarray,
    alpha: np.ndarray,
    rgb: np.ndarray,
    residue: Residue,
    background: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Blobs become background; rim pixels become ``a·(nearby person colour) + (1 - a)·background``.

    Returns (alpha, rgb), new arrays only where something changed.
    """
    if residue.pixels == 0:
        return alpha, rgb
    alpha = alpha.copy()
    rgb = rgb.copy()
    new = np.array(background, np.float32)
    if residue.blobs.any():
        grown = cv2.dilate(residue.blobs.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        alpha[grown] = 0.0
        cv2.copyTo(plain(rgb.shape, tuple(background)), grown.astype(np.uint8), rgb)
    if residue.rims.any():
        # Only around the rims: the nearby person colour is a box mean of the solid person there.
        ys, xs = np.nonzero(residue.rims)
        y0, y1 = max(0, int(ys.min()) - 7), int(ys.max()) + 8
        x0, x1 = max(0, int(xs.min()) - 7), int(xs.max()) + 8
        solid = (alpha[y0:y1, x0:x1] > 0.9).astype(np.float32)
        patch = source[y0:y1, x0:x1].astype(np.float32) * solid[..., None]
        colour = cv2.boxFilter(patch, -1, (13, 13), normalize=False)
        weight = cv2.boxFilter(solid, -1, (13, 13), normalize=False)
        fore = colour[ys - y0, xs - x0] / np.maximum(weight[ys - y0, xs - x0], 1e-3)[:, None]
        a = alpha[ys, xs, None]
        rgb[ys, xs] = np.clip(a * fore + (1 - a) * new + 0.5, 0, 255).astype(np.uint8)
    return alpha, rgb
