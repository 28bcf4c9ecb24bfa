"""Real faces from installed packages, and the photos the imaging tests derive from them.

Sources (no download): matplotlib's `grace_hopper.jpg` (a frontal studio portrait, the photo that
passes every check but headwear: she wears a cap), scikit-image's `astronaut`, and the sample images
in insightface's wheel (`t1.jpg`, a group photo whose faces are turned, squinting and smiling;
`mask_*.jpg`, no face). insightface is installed without its dependencies and never imported: its
files are read by path.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from services.imaging.config import PhotoStandard
from services.imaging.load import open_photo
from services.imaging.preprocess import (
    BROW_LEFT,
    BROW_RIGHT,
    CHIN,
    EYE_LEFT_CORNERS,
    EYE_RIGHT_CORNERS,
    FACE_EDGE_LEFT,
    IRIS_LEFT,
    IRIS_RIGHT,
    NOSE_TIP,
    Analysis,
    FaceModels,
    analyse,
)

Rgb = np.ndarray

#: The one rule Grace Hopper's portrait breaks: she wears her Navy cap (the standard: 免冠). Every
#: test that uses her as the photo that meets the standard expects exactly this verdict.
HOPPER_FAILS = ["headwear"]


def jpeg(rgb: Rgb, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def decode(data: bytes) -> Rgb:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read(path: Path) -> Rgb:
    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def insightface_image(name: str) -> Path:
    spec = importlib.util.find_spec("insightface")
    assert spec is not None and spec.submodule_search_locations, "insightface (dev extra) is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / name


@functools.cache
def hopper() -> Rgb:
    """Grace Hopper, 512×600, frontal, face ~185 px wide: meets every rule but headwear (a cap)."""
    return _read(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


@functools.cache
def astronaut() -> Rgb:
    """Eileen Collins, 512×512, face ~92 px wide: too small for the output; smiling."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@functools.cache
def group_faces() -> list[Rgb]:
    """The three largest faces of insightface's t1.jpg, cropped and enlarged to 384×384.

    0: head rolled and eyes lowered; 1: turned, raised, squinting and laughing; 2: raised chin.
    """
    t1 = _read(insightface_image("t1.jpg"))
    boxes = [(63, 290, 98), (728, 364, 107), (457, 293, 115)]  # x, y, size from the face detector
    crops = []
    for x, y, size in boxes:
        cx, cy, side = x + size // 2, y + size // 2, int(size * 1.8)
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        crop = np.ascontiguousarray(t1[y0 : y0 + side, x0 : x0 + side])
        crops.append(cv2.resize(crop, (384, 384), interpolation=cv2.INTER_CUBIC))
    return crops


@functools.cache
def no_face() -> Rgb:
    """A surgical mask on white (insightface's mask_blue.jpg), enlarged past the minimum size."""
    img = _read(insightface_image("mask_blue.jpg"))
    return cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2))


def hopper_analysis(models: FaceModels) -> Analysis:
    photo = open_photo(jpeg(hopper()), max_bytes=1 << 24, max_pixels=10**8, min_side=16)
    return analyse(
        photo, models, min_confidence=0.5, second_face_min_ratio=PhotoStandard().second_face_min_ratio
    )


# --- derived photos ------------------------------------------------------------------------------


def rotated(img: Rgb, degrees: float) -> Rgb:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def darkened_one_side(img: Rgb) -> Rgb:
    """Light falling from the right only: the left half of the face in shadow (yin-yang face)."""
    ramp = np.clip(np.linspace(0.25, 1.4, img.shape[1]), 0, 1)[None, :, None]
    return (img * ramp).astype(np.uint8)


def blurred(img: Rgb, sigma: float = 3.0) -> Rgb:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def over_exposed(img: Rgb) -> Rgb:
    return np.clip(img.astype(np.float32) * 1.9 + 30, 0, 255).astype(np.uint8)


def darkened(img: Rgb, factor: float = 0.3) -> Rgb:
    return (img * factor).astype(np.uint8)


def greyscale(img: Rgb) -> Rgb:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def two_faces(img: Rgb) -> Rgb:
    return np.hstack([img, img])


def _hair(shape: tuple[int, ...]) -> Rgb:
    rng = np.random.default_rng(5)
    base = np.array([38, 30, 26], np.float32)
    return np.clip(base + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)


def ear_painted_over(img: Rgb, analysis: Analysis) -> Rgb:
    """Dark hair painted over the image-left ear, as if the hair hung over it."""
    assert analysis.landmarks is not None
    p = analysis.landmarks
    out = img.copy()
    fw = analysis.face_width
    x = int(p[FACE_EDGE_LEFT, 0])
    y0, y1 = int(p[IRIS_LEFT, 1] - 0.25 * fw), int(p[NOSE_TIP, 1] + 0.3 * fw)
    region = (slice(max(0, y0), y1), slice(max(0, int(x - 0.3 * fw)), int(x + 0.04 * fw)))
    out[region] = _hair(out[region].shape)
    return out


def fringe_over_brows(img: Rgb, analysis: Analysis) -> Rgb:
    """A dark fringe hanging down to the eyes."""
    assert analysis.landmarks is not None
    p = analysis.landmarks
    out = img.copy()
    brows = p[list(BROW_LEFT + BROW_RIGHT)]
    y1 = int(p[[IRIS_LEFT, IRIS_RIGHT], 1].min() - 0.04 * analysis.face_width)
    region = (
        slice(int(brows[:, 1].min() - 0.25 * analysis.face_width), y1),
        slice(int(brows[:, 0].min() - 10), int(brows[:, 0].max() + 10)),
    )
    out[region] = _hair(out[region].shape)
    return out


def _eye_ellipses(img: Rgb, analysis: Analysis, colour: tuple[int, int, int], scale: float) -> Rgb:
    assert analysis.landmarks is not None
    p = analysis.landmarks
    out = img.copy()
    for corners, iris in ((EYE_LEFT_CORNERS, IRIS_LEFT), (EYE_RIGHT_CORNERS, IRIS_RIGHT)):
        cx = int((p[corners[0], 0] + p[corners[1], 0]) / 2)
        cy = int(p[iris, 1])
        axes = (int(0.13 * analysis.face_width * scale), int(0.09 * analysis.face_width * scale))
        cv2.ellipse(out, (cx, cy), axes, 0, 0, 360, colour, -1)
    return out


def tinted_glasses(img: Rgb, analysis: Analysis) -> Rgb:
    """Sunglasses: dark lenses over both eyes."""
    return _eye_ellipses(img, analysis, (25, 22, 20), 1.0)


def glasses_glare(img: Rgb, analysis: Analysis) -> Rgb:
    """A white reflection across each lens."""
    return _eye_ellipses(img, analysis, (252, 252, 252), 0.55)


def clothes_like_background(img: Rgb, analysis: Analysis) -> Rgb:
    """The dark uniform recoloured to the standard's light blue."""
    assert analysis.landmarks is not None
    out = img.copy()
    chin_y = int(analysis.landmarks[CHIN, 1] + 0.15 * analysis.face_width)
    body = out[chin_y:]
    luma = body.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    body[luma < 90] = (104, 192, 250)
    return out


def head_cut_at_top(img: Rgb, analysis: Analysis) -> Rgb:
    """The photo starts at the forehead: the crown is outside the frame."""
    assert analysis.landmarks is not None
    top = int(analysis.landmarks[[IRIS_LEFT, IRIS_RIGHT], 1].min() - 0.45 * analysis.face_width)
    return np.ascontiguousarray(img[max(0, top) :])


def body_cut_below_chin(img: Rgb, analysis: Analysis) -> Rgb:
    """The photo ends just below the chin, and the person is narrow in a wide frame: no shoulders."""
    assert analysis.landmarks is not None
    bottom = int(analysis.landmarks[CHIN, 1] + 0.25 * analysis.face_width)
    return np.ascontiguousarray(img[:bottom])
