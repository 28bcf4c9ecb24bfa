"""The CPU savings in the imaging pipeline compute exactly what the code before them computed.

Each saving is checked against the computation it replaced (kept here as the reference), on the
intermediate arrays of real photos (the load harness's student photos) or on seeded random masks.
The whole pipeline's equality (codes, flags, measures, JPEG bytes) over the benchmark sets is checked
by ``python -m bench.imaging.equivalence`` against the previous tree (docs/imaging.md, Performance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from deploy.local.faces import student_photo
from services.imaging import residue, standardize
from services.imaging.config import PhotoStandard
from services.imaging.load import open_photo
from services.imaging.pipeline import check_photo
from services.imaging.preprocess import FaceModels, analyse, luma, plain
from services.imaging.quality import Canvas, _measured_head_top, sharpness
from services.imaging.standardize import place, render
from tests.support import faces, imaging_sets

STANDARD = PhotoStandard()
PHOTOS = (1, 2, 3)  # load harness variants


def _captured(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, models: FaceModels
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The arguments ``module.name`` is called with while the load photos are checked."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    original: Callable[..., Any] = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    for variant in PHOTOS:
        check_photo(student_photo(variant), models, standard=STANDARD)
    monkeypatch.setattr(module, name, original)
    assert len(calls) >= len(PHOTOS)
    return calls


def _canvas(models: FaceModels, variant: int) -> Canvas:
    photo = open_photo(student_photo(variant), max_bytes=1 << 25, max_pixels=10**8, min_side=16)
    analysis = analyse(photo, models, min_confidence=0.5, second_face_min_ratio=0.35)
    placement = place(analysis, STANDARD)
    assert placement is not None
    return Canvas.build(analysis, placement, render(analysis, placement, STANDARD), STANDARD)


# --- the matte --------------------------------------------------------------------------------------


def test_guided_filter_gives_the_wanted_pixels_exactly(
    models: FaceModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    for args, kwargs in _captured(monkeypatch, standardize, "guided_filter", models):
        needed = kwargs.pop("needed")
        assert needed.any() and not needed.all()
        whole = standardize.guided_filter(*args, **kwargs)
        wanted = standardize.guided_filter(*args, **{**kwargs, "needed": needed})
        assert whole.shape == wanted.shape == needed.shape
        assert np.array_equal(whole[needed], wanted[needed])


def _nearest_known_before(
    rgb: np.ndarray, known: np.ndarray, ys: np.ndarray, xs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sampling as it was: one mask at a time, offset by offset, the first nearest kept."""
    r = standardize._SAMPLE_RADIUS
    stride = known.shape[1] + 2 * r
    flat_rgb = np.pad(rgb, ((r, r), (r, r), (0, 0)), mode="edge").reshape(-1, 3)
    flat_known = np.pad(known, r).ravel()
    centre = (ys + r) * stride + (xs + r)
    pixel = rgb[ys, xs]
    best_d = np.full(len(ys), np.inf, np.float32)
    best_c = np.zeros((len(ys), 3), np.float32)
    for dy, dx in standardize._SAMPLE_OFFSETS:
        index = centre + (dy * stride + dx)
        colour = flat_rgb.take(index, axis=0)
        diff = colour - pixel
        d = np.where(flat_known.take(index), np.einsum("ij,ij->i", diff, diff), np.inf)
        better = d < best_d
        best_d[better] = d[better]
        best_c[better] = colour[better]
    return best_c, np.isfinite(best_d)


def test_colour_sampling_matches_the_sampling_before(
    models: FaceModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    for (rgb, knowns, ys, xs), _ in _captured(monkeypatch, standardize, "_nearest_known", models):
        assert len(ys) > 100
        for known, (colour, found) in zip(
            knowns, standardize._nearest_known(rgb, knowns, ys, xs), strict=True
        ):
            colour_before, found_before = _nearest_known_before(rgb, known, ys, xs)
            assert found.any() and not found.all()
            assert np.array_equal(found, found_before)
            assert colour.dtype == colour_before.dtype and np.array_equal(colour, colour_before)
    # Ties go to the first offset, as before: a known pixel of the same colour at every offset.
    flat = np.full((20, 20, 3), 0.5, np.float32)
    known = np.ones((20, 20), bool)
    ys, xs = np.array([10, 5]), np.array([10, 5])
    [(colour, found)] = standardize._nearest_known(flat, (known,), ys, xs)
    assert np.array_equal(colour, _nearest_known_before(flat, known, ys, xs)[0]) and found.all()


# --- the residue search ------------------------------------------------------------------------------


def _touching_before(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    near = cv2.dilate(other.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    touching = np.zeros(count, bool)
    touching[np.unique(labels[near & mask])] = True
    touching[0] = False
    kept: np.ndarray = touching[labels]
    return kept


def _vouched_dropped_before(
    blobs: np.ndarray, bins: np.ndarray, own: np.ndarray, chin_row: int | None, band_px: int
) -> np.ndarray:
    if not blobs.any():
        return blobs
    _, labels, stats, _ = cv2.connectedComponentsWithStats(blobs.astype(np.uint8), connectivity=8)
    kept = blobs.copy()
    head = own.copy()
    if chin_row is not None and 0 < chin_row < own.shape[0]:
        head[chin_row:] = False
    totals = {
        False: np.bincount(bins[own], minlength=residue._LEVELS**3),
        True: np.bincount(bins[head], minlength=residue._LEVELS**3),
    }
    for label in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[: residue._MAX_PIECES]:
        x, y, bw, bh = (int(v) for v in stats[label, :4])
        beside_head = chin_row is not None and y + bh / 2 < chin_row
        region = head if beside_head else own
        box = (slice(max(0, y - band_px), y + bh + band_px), slice(max(0, x - band_px), x + bw + band_px))
        elsewhere = totals[beside_head] - np.bincount(bins[box][region[box]], minlength=residue._LEVELS**3)
        n = int(elsewhere.sum())
        if n < 50:
            continue
        piece = (slice(y, y + bh), slice(x, x + bw))
        mine = labels[piece] == label
        if residue._present(elsewhere, n)[bins[piece][mine]].mean() > 0.5:
            kept[piece][mine] = False
    return kept


@pytest.mark.parametrize("seed", range(12))
def test_one_labelling_finds_the_blobs_the_three_found(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 160, 120
    # Blobs of many sizes (specks and ties included), an outside region, colour bins with few levels so
    # that some blobs' colours appear elsewhere on the person and some do not.
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0 + seed % 3)
    mask = noise > np.quantile(noise, 0.8)
    outside = np.zeros((h, w), bool)
    outside[:, : w // 3] = True
    mask &= ~outside
    rgb = rng.integers(0, 256, (h, w, 3), np.uint8) // 64 * 64
    bins = residue._bins(rgb)
    own = ~mask & ~outside
    chin = None if seed % 2 else h // 2
    kept, labels, pieces = residue._pieces(mask, outside, 3)
    # residue._drop_specks is unchanged (the rims still use it): the old sequence is it after _touching.
    expected = residue._drop_specks(_touching_before(mask, outside), 3)
    assert expected.any() and not np.array_equal(expected, mask)
    assert np.array_equal(kept, expected)
    vouched = residue._vouched_dropped(kept, labels, pieces, bins, own, chin, 16)
    assert not np.array_equal(vouched, kept)  # some pieces are the person's colours
    assert np.array_equal(vouched, _vouched_dropped_before(expected, bins, own, chin, 16))


def test_half_size_canvas_is_the_one_each_step_made() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (640, 480, 3), np.uint8)
    assert np.array_equal(residue.half_size(rgb), cv2.resize(rgb, (240, 320), interpolation=cv2.INTER_AREA))


def test_plain_background_is_shared_and_read_only() -> None:
    canvas = plain((640, 480, 3), (100, 197, 255))
    assert canvas is plain((640, 480, 3), (100, 197, 255))
    assert not canvas.flags.writeable
    assert np.array_equal(canvas, np.full((640, 480, 3), (100, 197, 255), np.uint8))


# --- the measures ------------------------------------------------------------------------------------


def test_grey_of_the_photo_is_the_grey_of_each_crop() -> None:
    """The recapture measure converts the photo to grey once: per pixel, so its sampled rows and its
    crop are what converting the sample and the crop gave."""
    photos = [rgb for _, rgb, _ in imaging_sets.recapture_set()[:8]]
    photos.append(faces.decode(student_photo(4)))
    for rgb in photos:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        step = max(1, rgb.shape[1] // 360)
        sampled = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2GRAY)
        assert np.array_equal(grey[::step, ::step], sampled)
        crop = (slice(17, 17 + 256), slice(9, 9 + 256))
        assert np.array_equal(grey[crop], cv2.cvtColor(rgb[crop], cv2.COLOR_RGB2GRAY))


def test_canvas_values_read_once_are_the_values(models: FaceModels) -> None:
    for variant in PHOTOS:
        c = _canvas(models, variant)
        assert c.head_top_px == _measured_head_top(c) > 0
        assert np.array_equal(c.face_luma, c.luma[c.face_mask]) and c.face_luma.size > 1000
        lap = cv2.Laplacian(c.luma, cv2.CV_32F, ksize=3)
        inner = cv2.erode(c.face_mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        assert sharpness(c).raw == round(float(lap[inner].var()), 4)


def test_results_do_not_depend_on_opencv_threads(models: FaceModels) -> None:
    """The worker runs OpenCV on one thread; the CLI and the tests on its default."""
    threads = cv2.getNumThreads()
    try:
        reports = []
        for n in (1, 4):
            cv2.setNumThreads(n)
            reports.append(check_photo(student_photo(5), models, standard=STANDARD))
    finally:
        cv2.setNumThreads(threads)
    one, four = reports
    assert one.jpeg is not None and one.jpeg == four.jpeg
    assert one.measures == four.measures and one.geometry == four.geometry
    # Plain Python values, as the events and the CLI's JSON need them.
    assert all(type(m.passed) is bool and type(m.advisory) is bool for m in one.measures)
    assert all(m.raw is None or type(m.raw) is float for m in one.measures)


def test_luma_is_the_float_formula_for_every_colour() -> None:
    """All 2^24 8-bit colours: the table lookup gives the float32 formula's value bit for bit."""
    levels = np.arange(256, dtype=np.uint8)
    g, b = np.meshgrid(levels, levels, indexing="ij")
    for red in range(256):
        rgb = np.dstack([np.full_like(g, red), g, b])
        f = rgb.astype(np.float32)
        expected = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
        assert np.array_equal(luma(rgb), expected)
    odd = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32) * 255  # not 8-bit: the formula
    assert np.array_equal(luma(odd), 0.299 * odd[..., 0] + 0.587 * odd[..., 1] + 0.114 * odd[..., 2])
