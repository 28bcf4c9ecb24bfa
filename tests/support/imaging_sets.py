"""Labelled photo sets for the imaging measures, from package portraits and synthesis (no download).

- bare heads: the package faces with nothing on their heads (skimage's astronaut as a phone photo, the
  faces of insightface's group photo as portraits), and their hair recoloured (black, grey, white,
  blond, red, blue-dyed) — every one must pass `headwear`;
- hats: caps, beanies, brimmed hats and berets of several colours drawn onto those heads (shaded cloth
  with seams, bands and badges), Grace Hopper's own cap, and her cap repainted in hair-like colours —
  every one must fail `headwear`;
- residue: a portrait composited onto backgrounds with objects touching the hair (a pale window, a
  yellow sign, a dark frame), and onto a bright wall far behind a small face — where the truth is known;
- recapture and beautification: the portraits re-photographed from a screen (pixel grid, moiré), from
  a print (halftone), with the device's border; and with the skin smoothed.

Each set is a list of ``(name, photo RGB)``; builders take a :class:`FaceModels` where they need the
face's landmarks to place what they draw.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from deploy.local import faces as local_faces
from services.imaging.load import open_photo
from services.imaging.preprocess import (
    FACE_EDGE_LEFT,
    FACE_EDGE_RIGHT,
    FACE_OVAL,
    FOREHEAD,
    IRIS_LEFT,
    IRIS_RIGHT,
    Analysis,
    FaceModels,
    analyse,
    apply_affine,
    invert_affine,
)
from services.imaging.quality import Canvas, measured_head_top
from services.imaging.standardize import Rendered
from tests.support import faces, matching_faces

Rgb = np.ndarray


def _analysis(models: FaceModels, rgb: Rgb) -> Analysis:
    photo = open_photo(faces.jpeg(rgb, 95), max_bytes=1 << 25, max_pixels=10**8, min_side=16)
    a = analyse(photo, models, min_confidence=0.5, second_face_min_ratio=0.35)
    assert a.landmarks is not None, "no face in a labelled photo"
    return a


def astronaut_phone() -> Rgb:
    return cv2.cvtColor(local_faces._phone_frame(384.0, (720, 960)), cv2.COLOR_BGR2RGB)


def _group(i: int) -> Rgb:
    return matching_faces.portrait(matching_faces.group_photo(), matching_faces.GROUP_FACES[i], face_px=300)


#: Bare-headed package faces, each frontal enough to be placed (group 1 and 4 are turned too far).
BARE_SOURCES: dict[str, Callable[[], Rgb]] = {
    "astronaut": astronaut_phone,
    "group0": functools.partial(_group, 0),
    "group2": functools.partial(_group, 2),
    "group3": functools.partial(_group, 3),
    "group5": functools.partial(_group, 5),
}


@dataclass(frozen=True)
class Head:
    """Where the head is in a photo: face centre x, face width, forehead y, head top y, eye y (px)."""

    cx: float
    fw: float
    forehead: float
    top: float
    eyes: float

    @classmethod
    def of(cls, a: Analysis) -> Head:
        assert a.landmarks is not None and a.aligned is not None
        p = a.landmarks
        cx = float((p[FACE_EDGE_LEFT, 0] + p[FACE_EDGE_RIGHT, 0]) / 2)
        top = apply_affine(invert_affine(a.aligned), np.array([[a.face_centre_x, a.head_top]]))[0, 1]
        eyes = float((p[IRIS_LEFT, 1] + p[IRIS_RIGHT, 1]) / 2)
        return cls(cx, a.face_width, float(p[FOREHEAD, 1]), float(top), eyes)


def _hair_mask(rgb: Rgb, a: Analysis) -> np.ndarray:
    """The hair: the person around the face, outside the face oval and its skin (0-1 float).

    Down to the chin, fading out over a fifth of a face width below it (long hair is recoloured as
    far as the crown and the sides matter, never the clothes).
    """
    assert a.mask is not None and a.window is not None and a.landmarks is not None
    h, w = rgb.shape[:2]
    person = cv2.warpAffine(a.mask, invert_affine(a.window), (w, h), flags=cv2.INTER_LINEAR)
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(a.landmarks[list(FACE_OVAL), :2]).astype(np.int32)], 1)
    head = Head.of(a)
    chin = float(a.landmarks[152, 1])
    # Skin above the oval (the upper forehead) by its colour against the cheeks.
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    cheeks = lab[oval.astype(bool)]
    ref = np.median(cheeks, axis=0)
    hue = np.arctan2(lab[..., 2], lab[..., 1])
    hue_diff = np.abs(np.angle(np.exp(1j * (hue - np.arctan2(ref[2], ref[1])))))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    skin = (
        (hue_diff < np.radians(30))
        & (chroma > 0.35 * np.hypot(ref[1], ref[2]))
        & (lab[..., 0] > 0.5 * ref[0])
    )
    # Only near the face (the forehead up to the hairline): blond hair further out is hair.
    near = cv2.dilate(oval, np.ones((round(0.25 * head.fw),) * 2, np.uint8))
    near[: max(0, round(head.forehead - 0.12 * head.fw))] = 0
    skin = cv2.morphologyEx((skin & (near > 0)).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    skin = cv2.dilate(skin, np.ones((5, 5), np.uint8))
    oval = cv2.dilate(oval, np.ones((5, 5), np.uint8))
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    fade = np.clip((chin + 0.2 * head.fw - rows) / (0.2 * head.fw), 0, 1) * (
        np.abs(cols - head.cx) < 0.85 * head.fw
    )
    not_face = (oval == 0) & (skin == 0)
    mask: np.ndarray = np.clip(person, 0, 1) * not_face * fade
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)


HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    # Lab target: L (0-100), a, b.
    "black": (14.0, 1.0, 2.0),
    "grey": (62.0, 0.5, 3.0),
    "white": (86.0, 0.0, 4.0),
    "blond": (72.0, 4.0, 30.0),
    "red": (40.0, 30.0, 32.0),
    "blue-dyed": (40.0, 8.0, -38.0),
}


def recoloured_hair(rgb: Rgb, a: Analysis, colour: str) -> Rgb:
    """The hair recoloured, its texture kept: lightness follows the original's, chroma is set."""
    target_l, target_a, target_b = HAIR_COLOURS[colour]
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    mask = _hair_mask(rgb, a)
    sel = mask > 0.05
    lum = lab[..., 0]
    mean_l = float(lum[mask > 0.5].mean()) if (mask > 0.5).any() else 40.0
    new = lab.copy()
    new[..., 0] = np.clip(target_l + (lum - mean_l) * 0.9, 0, 100)
    new[..., 1] = target_a
    new[..., 2] = target_b
    out = cv2.cvtColor(new, cv2.COLOR_LAB2RGB) * 255.0
    m = (mask * sel)[..., None]
    return np.clip(out * m + rgb.astype(np.float32) * (1 - m), 0, 255).astype(np.uint8)


HAT_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 30),
    "brown": (92, 62, 42),
    "grey": (128, 126, 122),
    "navy": (30, 40, 88),
    "red": (168, 32, 36),
    "beige": (198, 178, 146),
}


def _cloth(shape: tuple[int, int], colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """Cloth: a flat colour with a weave (fine, low contrast) and soft shading from the top."""
    rng = np.random.default_rng(seed)
    h, w = shape
    weave = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8) * 6
    shade = np.linspace(1.12, 0.85, h, dtype=np.float32)[:, None]
    base = np.array(colour, np.float32)[None, None, :]
    return np.clip(base * shade[..., None] + weave[..., None], 0, 255)


def draw_hat(rgb: Rgb, a: Analysis, kind: str, colour: str, seed: int = 0) -> Rgb:
    """A hat of ``kind`` (cap, beanie, brimmed, beret) in ``colour``, drawn onto the head."""
    head = Head.of(a)
    h, w = rgb.shape[:2]
    cx, fw = head.cx, head.fw
    band = head.forehead + 0.06 * fw  # where the hat's lower edge crosses the forehead
    crown_h = band - head.top + 0.06 * fw
    mask = np.zeros((h, w), np.uint8)
    edges = np.zeros((h, w), np.uint8)  # seams, bands: darker lines
    c = (round(cx), round(band))
    if kind == "cap":
        cv2.ellipse(mask, c, (round(0.6 * fw), round(crown_h)), 0, 180, 360, 1, -1)
        cv2.ellipse(mask, (c[0], c[1] - 2), (round(0.58 * fw), round(0.16 * fw)), 0, 0, 180, 1, -1)  # peak
        for angle in (-50, -20, 20, 50):
            end = (
                round(cx + np.sin(np.radians(angle)) * 0.6 * fw),
                round(band - np.cos(np.radians(angle)) * crown_h),
            )
            cv2.line(edges, (c[0], round(band - crown_h)), end, 1, 2)
        cv2.ellipse(edges, (c[0], c[1] - 2), (round(0.58 * fw), round(0.16 * fw)), 0, 180, 360, 1, 2)
    elif kind == "beanie":
        cv2.ellipse(mask, c, (round(0.6 * fw), round(crown_h + 0.04 * fw)), 0, 180, 360, 1, -1)
        cv2.rectangle(
            mask, (round(cx - 0.6 * fw), round(band - 0.2 * fw)), (round(cx + 0.6 * fw), round(band)), 1, -1
        )
        for x in np.arange(cx - 0.6 * fw, cx + 0.6 * fw, 0.05 * fw):  # ribbed band
            cv2.line(edges, (round(x), round(band - 0.2 * fw)), (round(x), round(band)), 1, 1)
        cv2.line(
            edges,
            (round(cx - 0.6 * fw), round(band - 0.2 * fw)),
            (round(cx + 0.6 * fw), round(band - 0.2 * fw)),
            1,
            2,
        )
    elif kind == "brimmed":
        top_y = head.top - 0.12 * fw
        crown = np.array(
            [
                (cx - 0.42 * fw, top_y),
                (cx + 0.42 * fw, top_y),
                (cx + 0.55 * fw, band),
                (cx - 0.55 * fw, band),
            ],
            np.int32,
        )
        cv2.fillPoly(mask, [crown], 1)
        cv2.ellipse(mask, c, (round(1.0 * fw), round(0.14 * fw)), 0, 0, 360, 1, -1)
        cv2.rectangle(
            edges,
            (round(cx - 0.54 * fw), round(band - 0.16 * fw)),
            (round(cx + 0.54 * fw), round(band - 0.06 * fw)),
            1,
            -1,
        )
    elif kind == "beret":
        cv2.ellipse(
            mask,
            (round(cx + 0.08 * fw), round(head.top + 0.18 * fw)),
            (round(0.74 * fw), round(0.3 * fw)),
            -6,
            0,
            360,
            1,
            -1,
        )
        cv2.ellipse(mask, c, (round(0.56 * fw), round(crown_h * 0.9)), 0, 180, 360, 1, -1)
        cv2.ellipse(edges, c, (round(0.56 * fw), round(0.05 * fw)), 0, 180, 360, 1, 2)
    else:
        raise ValueError(kind)
    cloth = _cloth((h, w), HAT_COLOURS[colour], seed)
    cloth[edges.astype(bool)] *= 0.6
    if kind == "cap":  # a badge on the front panel
        cv2.circle(cloth, (c[0], round(band - 0.45 * crown_h)), round(0.08 * fw), (210, 190, 90), -1)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
    return np.clip(cloth * soft + rgb.astype(np.float32) * (1 - soft), 0, 255).astype(np.uint8)


# Grace Hopper's cap in grace_hopper.jpg (512×600), clockwise from its left crown: generous around
# the cap; the skin inside it is kept (_cap_mask).
CAP_OUTLINE = [
    (168, 45), (230, 18), (300, 18), (358, 42), (362, 80), (378, 100), (376, 150), (355, 165),
    (300, 162), (250, 160), (200, 165), (158, 180), (146, 150), (150, 100), (172, 80),
]  # fmt: skip


def _cap_mask(rgb: Rgb) -> np.ndarray:
    outline = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(outline, [np.array(CAP_OUTLINE, np.int32)], 255)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lum, a, b = lab[..., 0], lab[..., 1] - 128, lab[..., 2] - 128
    pinkish = ((a > 6) & (a < 40) & (b > 8) & (lum > 90)).astype(np.uint8)
    skin = cv2.morphologyEx(pinkish, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    sky = (b < -20) & (lum > 120)
    cap = np.where((outline > 0) & (skin == 0) & ~sky, 255, 0).astype(np.uint8)
    return cv2.morphologyEx(cap, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))


def hopper_cap_repainted(colour: str) -> Rgb:
    """Grace Hopper with her cap repainted in a hair-like colour (the old demo photo did this in grey)."""
    target_l, target_a, target_b = HAIR_COLOURS[colour]
    rgb = faces.hopper()
    cap = _cap_mask(rgb)
    inside = cap > 0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    grain = np.random.default_rng(3).normal(0, 6, int(inside.sum()))
    lab[..., 0][inside] = np.clip(target_l * 2.55 * 0.6 + 0.45 * lab[..., 0][inside] + grain, 0, 255)
    lab[..., 1][inside] = 128 + target_a
    lab[..., 2][inside] = 128 + target_b
    hair = cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    soft = cv2.GaussianBlur(cap, (0, 0), 1.5).astype(np.float32)[..., None] / 255
    return np.asarray(hair * soft + rgb * (1 - soft), np.uint8)


def headwear_set(models: FaceModels, *, small: bool = False) -> list[tuple[str, Rgb, bool]]:
    """``(name, photo, wears headwear)``. ``small``: a bounded subset for the test suite."""
    items: list[tuple[str, Rgb, bool]] = []
    sources = ("astronaut", "group2", "group5") if small else tuple(BARE_SOURCES)
    hair = ("black", "grey", "blue-dyed") if small else tuple(HAIR_COLOURS)
    kinds = ("cap", "beanie", "brimmed", "beret")
    colours = ("black", "brown", "grey") if small else tuple(HAT_COLOURS)
    for s, name in enumerate(sources):
        rgb = BARE_SOURCES[name]()
        a = _analysis(models, rgb)
        items.append((f"bare-{name}", rgb, False))
        for colour in hair:
            items.append((f"hair-{colour}-{name}", recoloured_hair(rgb, a, colour), False))
        for k, kind in enumerate(kinds):
            for j, colour in enumerate(colours):
                if small and (k + j + s) % 3:
                    continue
                items.append(
                    (f"{kind}-{colour}-{name}", draw_hat(rgb, a, kind, colour, seed=k * 7 + j), True)
                )
    items.append(("hopper-cap", faces.hopper(), True))
    for colour in ("grey", "black") if small else ("grey", "black", "blond", "red", "white"):
        items.append((f"hopper-cap-{colour}", hopper_cap_repainted(colour), True))
    return items


# --- residue: the old background left beside the person -----------------------------------------------


def person_alpha(rgb: Rgb, a: Analysis) -> np.ndarray:
    """The person in ``rgb`` (0-1 float, full size) from the segmentation the analysis ran."""
    assert a.mask is not None and a.window is not None
    h, w = rgb.shape[:2]
    alpha = cv2.warpAffine(a.mask, invert_affine(a.window), (w, h), flags=cv2.INTER_LINEAR)
    return np.clip((alpha - 0.5) * 3 + 0.5, 0, 1).astype(np.float32)


RESIDUE_OBJECTS: dict[str, tuple[int, int, int]] = {
    "yellow-sign": (232, 196, 30),
    "pale-window": (226, 236, 244),
    "red-poster": (200, 40, 46),
    "green-plant": (52, 140, 60),
    "dark-frame": (40, 32, 30),
}


def _behind(rgb: Rgb, alpha: np.ndarray, shape: np.ndarray, colour: tuple[int, int, int]) -> Rgb:
    """Paint ``shape`` (0-1) in ``colour`` behind the person: it shows through the soft edge of the
    hair (where the person mask is below 0.9), as a background object does between strands."""
    visible = np.clip((0.9 - alpha) / 0.6, 0, 1)
    layer = (shape * visible)[..., None]
    out = rgb.astype(np.float32) * (1 - layer) + np.array(colour, np.float32) * layer
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def object_touching_hair(rgb: Rgb, a: Analysis, kind: str) -> tuple[Rgb, np.ndarray]:
    """An object of the old background behind the head, reaching into the hair's edge.

    Returns (photo, where the object shows). Each overlaps the head's outline by a tenth of a face
    width, so the segmentation's unsure band holds object colours (the hard case for a matte).
    """
    head = Head.of(a)
    alpha = person_alpha(rgb, a)
    h, w = rgb.shape[:2]
    shape = np.zeros((h, w), np.float32)
    cx, fw, top = head.cx, head.fw, head.top
    # The head's outline at eye height and above: the person mask's extent on a few rows.
    rows = np.nonzero(alpha[int(max(0, top)) : int(head.eyes)].max(axis=0) > 0.5)[0]
    left, right = (float(rows.min()), float(rows.max())) if rows.size else (cx - 0.7 * fw, cx + 0.7 * fw)
    if kind == "yellow-sign":  # a sign's letters at the temple, behind the hair
        x0, y0 = int(right - 0.12 * fw), int(head.eyes - 0.6 * fw)
        letters = np.zeros((h, w), np.uint8)
        for i, letter in enumerate("EXIT"):
            origin = (x0 + int(i * 0.22 * fw), y0)
            cv2.putText(letters, letter, origin, cv2.FONT_HERSHEY_SIMPLEX, fw / 110, 1, max(2, int(fw / 40)))
        shape = letters.astype(np.float32)
    elif kind == "pale-window":  # a window pane above the head, its lower edge in the hair
        cv2.rectangle(
            shape,
            (int(cx - 0.3 * fw), int(top - 0.4 * fw)),
            (int(cx + 0.45 * fw), int(top + 0.1 * fw)),
            1.0,
            -1,
        )
    elif kind == "red-poster":  # the corner of a poster at the other temple
        cv2.rectangle(
            shape,
            (int(left - 0.6 * fw), int(top + 0.1 * fw)),
            (int(left + 0.12 * fw), int(head.eyes)),
            1.0,
            -1,
        )
    elif kind == "green-plant":  # leaves behind the hair at the side
        rng = np.random.default_rng(4)
        for _ in range(14):
            centre = (int(right + rng.uniform(-0.1, 0.3) * fw), int(head.eyes + rng.uniform(-0.6, 0.2) * fw))
            cv2.ellipse(shape, centre, (int(0.12 * fw), int(0.05 * fw)), rng.uniform(0, 180), 0, 360, 1.0, -1)
    elif kind == "dark-frame":  # a door frame behind the side of the head
        cv2.rectangle(shape, (int(left - 0.1 * fw), 0), (int(left + 0.06 * fw), h), 1.0, -1)
    else:
        raise ValueError(kind)
    shape = cv2.GaussianBlur(shape, (0, 0), 0.8)
    visible = shape * np.clip((0.9 - alpha) / 0.6, 0, 1)
    return _behind(rgb, alpha, shape, RESIDUE_OBJECTS[kind]), visible


def on_bright_wall(
    rgb: Rgb, a: Analysis, *, wall: tuple[int, int, int] = (246, 246, 240), face_px: float | None = 160.0
) -> Rgb:
    """The person composited onto a plain wall; with ``face_px``, seen from further away.

    The person's edge carries the wall (a soft edge mixes it in, as a lens does). From further away
    (a wider frame, shrunk so the face is ``face_px`` wide) the face must be enlarged again for the
    output, and a matte that keeps the mixed edge leaves a light rim along the jaw and the hair.
    """
    alpha = person_alpha(rgb, a)
    soft = cv2.GaussianBlur(alpha, (0, 0), 1.5)[..., None]
    composite = rgb.astype(np.float32) * soft + np.array(wall, np.float32) * (1 - soft)
    if face_px is None:
        return np.clip(composite + 0.5, 0, 255).astype(np.uint8)
    h, w = rgb.shape[:2]
    big = np.empty((round(h * 1.3), round(w * 1.6), 3), np.float32)
    big[:] = wall
    y0, x0 = big.shape[0] - h, (big.shape[1] - w) // 2
    big[y0:, x0 : x0 + w] = composite
    k = face_px / Head.of(a).fw
    small = cv2.resize(big, (round(big.shape[1] * k), round(big.shape[0] * k)), interpolation=cv2.INTER_AREA)
    return np.clip(small + 0.5, 0, 255).astype(np.uint8)


def residue_set(models: FaceModels) -> list[tuple[str, Rgb, bool]]:
    """``(name, photo, has residue risk)``: objects touching the head, a bright wall; clean composites."""
    items: list[tuple[str, Rgb, bool]] = []
    for name in ("astronaut", "group2", "group5"):
        rgb = BARE_SOURCES[name]()
        a = _analysis(models, rgb)
        for kind in RESIDUE_OBJECTS:
            photo, _ = object_touching_hair(rgb, a, kind)
            items.append((f"{kind}-{name}", photo, True))
        items.append((f"bright-wall-{name}", on_bright_wall(rgb, a), True))
        for wall_name, wall in (
            ("grey", (150, 150, 150)),
            ("beige", (200, 190, 170)),
            ("white", (236, 236, 236)),
        ):
            items.append(
                (f"clean-{wall_name}-{name}", on_bright_wall(rgb, a, wall=wall, face_px=None), False)
            )
    return items


# --- recapture: a photo of a screen or of a print ------------------------------------------------------


def on_screen(rgb: Rgb, *, pitch: int = 3, bezel: bool = True, seed: int = 0) -> Rgb:
    """``rgb`` shown on a screen and photographed: an RGB sub-pixel grid of ``pitch`` px, glow, a
    slight tilt, the phone's resampling (moiré) and sensor noise; with ``bezel``, the dark frame."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    big = cv2.resize(rgb, (w * pitch, h * pitch), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    grid = np.zeros((h * pitch, w * pitch, 3), np.float32)
    sub = max(1, pitch // 3)
    for channel in range(3):
        for offset in range(sub):
            grid[:, channel * sub + offset :: pitch, channel] = 1.0
    grid[pitch - 1 :: pitch] *= 0.35  # the dark row between pixel rows
    shown = cv2.GaussianBlur(big * grid * 1.6, (0, 0), 0.6)
    if bezel:
        pad = round(0.06 * shown.shape[1])
        shown = cv2.copyMakeBorder(shown, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(18, 18, 20))
    sh, sw = shown.shape[:2]
    tilt = np.float32([[0, 0], [sw, 0], [0, sh], [sw, sh]])
    jitter = np.float32(rng.uniform(-0.015, 0.015, (4, 2)) * [sw, sh])
    matrix = cv2.getPerspectiveTransform(tilt, tilt + jitter)
    shot = cv2.warpPerspective(shown, matrix, (sw, sh), borderMode=cv2.BORDER_REPLICATE)
    out_w = 720
    photo = cv2.resize(shot, (out_w, round(sh * out_w / sw)), interpolation=cv2.INTER_AREA)
    photo += rng.normal(0, 2.0, photo.shape).astype(np.float32)
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8)


def on_paper(rgb: Rgb, *, period: float = 4.0, border: bool = True, seed: int = 0) -> Rgb:
    """``rgb`` printed (a CMY halftone of ``period`` px at 15°/75°/0°, paper grain) and photographed;
    with ``border``, the white paper margin and the table around it."""
    rng = np.random.default_rng(seed)
    scale = 2
    h, w = rgb.shape[:2]
    big = cv2.resize(rgb, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    yy, xx = np.mgrid[0 : h * scale, 0 : w * scale].astype(np.float32)
    ink = np.empty_like(big)
    for channel, angle in zip(range(3), (15.0, 75.0, 0.0), strict=True):
        t = np.radians(angle)
        u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
        screen = (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period)) / 4 + 0.5
        coverage = 1.0 - big[..., channel]  # cyan, magenta, yellow
        ink[..., channel] = (coverage > screen).astype(np.float32)
    printed = (1.0 - ink) * 0.92 + 0.04
    printed += rng.normal(0, 0.02, printed.shape[:2])[..., None].astype(np.float32)
    printed = cv2.GaussianBlur(printed, (0, 0), 0.7) * 255.0
    if border:
        pad = round(0.05 * printed.shape[1])
        printed = cv2.copyMakeBorder(printed, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(240, 238, 232))
        pad2 = round(0.04 * printed.shape[1])
        printed = cv2.copyMakeBorder(printed, pad2, pad2, pad2, pad2, cv2.BORDER_CONSTANT, value=(96, 72, 50))
    out_w = 720
    photo = cv2.resize(
        printed, (out_w, round(printed.shape[0] * out_w / printed.shape[1])), interpolation=cv2.INTER_AREA
    )
    photo += rng.normal(0, 1.5, photo.shape).astype(np.float32)
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8)


def live_variant(rgb: Rgb, seed: int) -> Rgb:
    """The same portrait as a live phone photo: resampled to 720 px wide, exposure, noise, no screen."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    photo = cv2.resize(rgb, (720, round(h * 720 / w)), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    photo = photo * rng.uniform(0.9, 1.08) + rng.normal(0, rng.uniform(0.5, 3.0), photo.shape)
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8)


def recapture_set() -> list[tuple[str, Rgb, bool]]:
    """``(name, photo, recaptured)``: screens of 3 pitches, prints of 2 periods, with and without the
    frame; and the same portraits live (negatives)."""
    items: list[tuple[str, Rgb, bool]] = []
    for s, name in enumerate(BARE_SOURCES):
        rgb = BARE_SOURCES[name]()
        small = cv2.resize(rgb, (480, round(rgb.shape[0] * 480 / rgb.shape[1])), interpolation=cv2.INTER_AREA)
        items.append((f"screen-p3-{name}", on_screen(small, pitch=3, seed=s), True))
        items.append((f"screen-p4-nobezel-{name}", on_screen(small, pitch=4, bezel=False, seed=s), True))
        items.append((f"print-4-{name}", on_paper(small, period=4.0, seed=s), True))
        items.append((f"print-5-noborder-{name}", on_paper(small, period=5.0, border=False, seed=s), True))
        items.append((f"live-{name}", live_variant(rgb, s), False))
        items.append((f"live2-{name}", live_variant(rgb, s + 10), False))
    items.append(("live-hopper", live_variant(faces.hopper(), 3), False))
    return items


# --- beautification: skin smoothed, the rest sharp ------------------------------------------------------


def smoothed_skin(rgb: Rgb, a: Analysis, strength: int = 2) -> Rgb:
    """A beauty filter: the face's skin smoothed edge-preservingly (eyes, brows and lips stay sharp)."""
    assert a.landmarks is not None
    h, w = rgb.shape[:2]
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(a.landmarks[list(FACE_OVAL), :2]).astype(np.int32)], 255)
    soft = cv2.GaussianBlur(oval, (0, 0), 4).astype(np.float32)[..., None] / 255
    smooth = rgb.copy()
    for _ in range(strength):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    # Features keep their edges: the filter is edge-preserving; beauty apps also brighten a little.
    out = smooth.astype(np.float32) * 1.03 * soft + rgb.astype(np.float32) * (1 - soft)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def beautification_set(models: FaceModels) -> list[tuple[str, Rgb, bool]]:
    """``(name, photo, beautified)``: the portraits with skin smoothed at two strengths; originals."""
    items: list[tuple[str, Rgb, bool]] = []
    for s, name in enumerate(BARE_SOURCES):
        rgb = BARE_SOURCES[name]()
        a = _analysis(models, rgb)
        items.append((f"original-{name}", rgb, False))
        items.append((f"live-{name}", live_variant(rgb, s), False))
        items.append((f"smoothed-{name}", smoothed_skin(rgb, a, 2), True))
        items.append((f"smoothed-strong-{name}", smoothed_skin(rgb, a, 4), True))
    items.append(("original-hopper", faces.hopper(), False))
    a = _analysis(models, faces.hopper())
    items.append(("smoothed-hopper", smoothed_skin(faces.hopper(), a, 3), True))
    return items


# --- residue made on purpose on a rendered canvas (the matte made to fail; known truth) ----------------

PANE, WALL = (226, 236, 244), (246, 246, 240)


def kept_window(c: Canvas) -> tuple[Rendered, np.ndarray, tuple[int, int, int]]:
    """A pale window pane in the old background above the head, which the matte kept as person."""
    r = c.rendered
    top = int(measured_head_top(c))
    cx = int(c.points[:, 0].mean())
    source = r.source.copy()
    pane = np.zeros(r.alpha.shape, bool)
    pane[max(0, top - 40) : top + 6, cx - 30 : cx + 40] = True
    pane &= (r.alpha < 0.5) & r.inside  # the part of the pane that is not the head, inside the photo
    source[pane] = PANE
    # Elsewhere in the old background the same window shows (so it is the old background's colour):
    # a patch where the canvas is surely background and inside the photo.
    h, w = r.alpha.shape
    spots = [(y, x) for y in range(0, h - 30, 10) for x in (*range(0, 120, 10), *range(w - 50, w - 170, -10))]
    for y, x in spots:
        patch = (slice(y, y + 30), slice(x, x + 50))
        if (r.alpha[patch] < 0.02).all() and r.inside[patch].all() and not pane[patch].any():
            source[patch] = PANE
            break
    alpha = r.alpha.copy()
    alpha[pane] = 1.0
    rgb = r.rgb.copy()
    rgb[pane] = PANE
    return Rendered(source, alpha, r.inside, rgb), pane, PANE


def light_rim(c: Canvas) -> tuple[Rendered, np.ndarray, tuple[int, int, int]]:
    """The hair's soft edge painted near-white along the top of the head (a bright wall mixed in)."""
    r = c.rendered
    edge = (r.alpha > 0.2) & (r.alpha < 0.9)
    edge[int(measured_head_top(c)) + 60 :] = False
    rgb = r.rgb.copy()
    rgb[edge] = WALL
    return Rendered(r.source, r.alpha, r.inside, rgb), edge, WALL
