"""Turn an uploaded image (photo, screenshot, saved code) into the QR text it carries.

Students upload whatever they have: a clean PNG saved from CHSI, a WeChat-recompressed
JPEG, a screenshot with the code small in it, or a phone photo of a monitor. The code is
dense (version 13-16), so a single library call misses a few percent of real uploads.
:func:`cascade` therefore runs cheap attempts first and only pays for preprocessing,
rescaling and perspective rectification when they fail, under a hard time budget.

Images are handled as 8-bit **grayscale** ``numpy`` arrays (H×W, uint8): every decoder
binarises luminance anyway, and one channel is a third of the work. ``decode_with``
also accepts BGR and converts.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp
from PIL import Image, ImageOps
from pyzbar import pyzbar
from pyzbar.pyzbar import ZBarSymbol

from shared.imagefiles import truncation

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENGINES",
    "DecodeError",
    "DecodeResult",
    "cascade",
    "decode_image",
    "decode_with",
    "load_image",
]

DEFAULT_MAX_PIXELS = 40_000_000
#: Working resolution: ~2.5 px per module for a code filling 10% of a 4 MP frame is
#: still decodable, while a 40 MP frame would cost zxing 0.5 s and OpenCV 13 s.
WORK_MAX_PIXELS = 4_000_000
#: Wall-clock budget for the whole cascade; checked before each step, no step exceeds ~0.2 s.
CASCADE_BUDGET_S = 1.0

ENGINES = ("pyzbar", "zxing", "opencv")

# Codes an API client may receive; keep in sync with docs/codec.md.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED_IMAGE = "truncated_image"
IMAGE_TOO_LARGE = "image_too_large"
NO_CODE_FOUND = "no_code_found"
MULTIPLE_CODES = "multiple_codes"


class DecodeError(Exception):
    """Why an upload yields no single QR text; ``code`` is stable and shown to API clients."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or code)
        self.code = code


@dataclass(frozen=True)
class DecodeResult:
    """Exactly one distinct text, the cascade stage that found it, and the decode time."""

    texts: tuple[str, ...]
    stage: str
    ms: float


# --- loading ----------------------------------------------------------------------------------------

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _looks_like_image(data: bytes) -> bool:
    """A known signature that Pillow cannot open means the file was cut short, not that it is text."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _check_complete(data: bytes, fmt: str | None) -> None:
    if problem := truncation(data, fmt):
        raise DecodeError(TRUNCATED_IMAGE, problem)


def _to_gray(img: Image.Image) -> np.ndarray:
    """Flatten transparency onto white (transparent pixels are often black RGB) and drop colour."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return np.ascontiguousarray(scaled.astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))


def _upright(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a malformed EXIF block is ignored rather than failing the upload."""
    try:
        return ImageOps.exif_transpose(img) or img
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, struct.error):
        return img


_LOAD_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode upload bytes to an upright grayscale uint8 array (H×W).

    The pixel count comes from the header (``Image.open`` reads no pixel data), so a
    30000×30000 PNG is refused in microseconds. EXIF orientation is applied because
    phone photos are stored sideways. Huge JPEGs are decoded with DCT downscaling to
    about the cascade's working size, where the cascade would resize them anyway.
    Raises :class:`DecodeError` (``empty_file``, ``not_an_image``, ``truncated_image``,
    ``image_too_large``).
    """
    if not data:
        raise DecodeError(EMPTY_FILE, "the file is empty")
    try:
        img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limits (89 Mpx warning, 179 Mpx error) sit above ours; the warning
        # only arrives here as an exception when warnings are turned into errors.
        raise DecodeError(IMAGE_TOO_LARGE, str(exc)) from exc
    except (*_LOAD_ERRORS, TypeError) as exc:
        if _looks_like_image(data):
            raise DecodeError(TRUNCATED_IMAGE, "image header is incomplete") from exc
        raise DecodeError(NOT_AN_IMAGE, "not a supported image format") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise DecodeError(NOT_AN_IMAGE, "image has no pixels")
    if width * height > max_pixels:
        raise DecodeError(IMAGE_TOO_LARGE, f"{width}x{height} exceeds {max_pixels} pixels")
    _check_complete(data, img.format)
    try:
        if img.format == "JPEG" and width * height > 2 * WORK_MAX_PIXELS:
            scale = (WORK_MAX_PIXELS / (width * height)) ** 0.5
            img.draft("L", (int(width * scale), int(height * scale)))
        img.load()
    except _LOAD_ERRORS as exc:
        raise DecodeError(TRUNCATED_IMAGE, f"pixel data is incomplete or corrupt: {exc}") from exc
    try:
        return _to_gray(_upright(img))
    except (ValueError, OSError) as exc:  # exotic modes (LAB, HSV, ...) with no grey conversion
        raise DecodeError(NOT_AN_IMAGE, f"unsupported image mode {img.mode}") from exc


# --- single engines ---------------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    """QR byte segments are UTF-8 in practice; latin-1 keeps any other byte sequence lossless."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)


# zxing-cpp 3.x: ``BarcodeFormat.QRCode`` is a *family* that includes Micro QR and rMQR, whose
# weak checksums let pure sensor noise decode as a 6-digit "code". CHSI codes are Model 2 QR.
_ZXING_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCodeModel2)


def _zxing(image: np.ndarray, binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage) -> list[str]:
    results = zxingcpp.read_barcodes(image, formats=_ZXING_FORMATS, binarizer=binarizer)
    return [r.text for r in results if r.valid]


def _pyzbar(image: np.ndarray) -> list[str]:
    return [_text(r.data) for r in pyzbar.decode(image, symbols=[ZBarSymbol.QRCODE])]


def _opencv(image: np.ndarray) -> list[str]:
    # Detector objects hold state and are not thread-safe; constructing one costs ~10 µs.
    data, _points, _straight = cv2.QRCodeDetector().detectAndDecodeBytes(image)
    return [_text(data)] if data else []


_ENGINE_FNS: dict[str, Callable[[np.ndarray], list[str]]] = {
    "pyzbar": _pyzbar,
    "zxing": _zxing,
    "opencv": _opencv,
}


def decode_with(engine: str, image: np.ndarray) -> list[str]:
    """One plain attempt with one library: the benchmark's single-library baselines."""
    try:
        fn = _ENGINE_FNS[engine]
    except KeyError:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}") from None
    return _distinct(fn(_gray(image)))


def _distinct(texts: list[str]) -> list[str]:
    """The same code seen twice (two copies, or two stages) is one code."""
    return list(dict.fromkeys(t for t in texts if t))


# --- the cascade -------------------------------------------------------------------------------------


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=interp)


def _cap_pixels(image: np.ndarray, limit: int) -> np.ndarray:
    pixels = image.shape[0] * image.shape[1]
    return image if pixels <= limit else _resize(image, (limit / pixels) ** 0.5)


_MIN_SIDE = 21  # a version-1 QR code at one pixel per module; nothing smaller can hold one
_LOCATE_MAX_PIXELS = 1_000_000  # OpenCV's detector is the slow part; corners survive downscaling
_UPSCALE_MAX_PIXELS = 1_500_000  # upscaling only helps small codes (<2 px/module); bounds the cost


def _half(image: np.ndarray) -> np.ndarray | None:
    # Area averaging is the cheapest denoiser: noise, JPEG blocking and moiré stripes on big codes.
    return _resize(image, 0.5) if min(image.shape) >= 2 * _MIN_SIDE else None


def _downscale(image: np.ndarray) -> np.ndarray | None:
    # The same for codes too small to survive halving.
    return _resize(image, 0.7) if min(image.shape) >= 2 * _MIN_SIDE else None


def _invert(image: np.ndarray) -> np.ndarray:
    # Dark-mode screenshots; zbar only reads dark-on-light. zxing inverts its *binarised*
    # bitmap itself, but its histogram threshold lands differently on the inverted grey image.
    return cv2.bitwise_not(image)


def _otsu(image: np.ndarray) -> np.ndarray:
    return cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


def _adaptive_fine(image: np.ndarray) -> np.ndarray:
    # Small window: follows moiré bands and glare that vary over a few modules.
    return cv2.adaptiveThreshold(image, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 15, 3)


def _adaptive(image: np.ndarray) -> np.ndarray:
    # 31 px window ≈ several modules: follows gradients, keeps blurred module edges apart.
    return cv2.adaptiveThreshold(image, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 31, 5)


def _smooth_adaptive(image: np.ndarray) -> np.ndarray:
    # Blur first so sensor noise and moiré do not survive binarisation as fake modules.
    return _adaptive(cv2.GaussianBlur(image, (0, 0), 1.2))


def _sharpen(image: np.ndarray) -> np.ndarray:
    # Unsharp mask: restores module edges after defocus or hand-shake blur.
    return cv2.addWeighted(image, 2.0, cv2.GaussianBlur(image, (0, 0), 2.0), -1.0, 0)


def _upscale(image: np.ndarray) -> np.ndarray | None:
    # Gives the binariser whole pixels per module on codes shrunk to ~1.5 px/module.
    if image.shape[0] * image.shape[1] > _UPSCALE_MAX_PIXELS:
        return None
    return _resize(image, 2.0)


def _clahe(image: np.ndarray) -> np.ndarray:
    # Local contrast equalisation for washed-out screens and faded prints.
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image)


def _median(image: np.ndarray) -> np.ndarray:
    return cv2.medianBlur(image, 3)  # salt-and-pepper noise


def _pad(image: np.ndarray) -> np.ndarray:
    # Tight crops lose the quiet zone the finder-pattern search relies on.
    border = max(16, min(image.shape) // 10)
    return cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=255)


def _rectify(image: np.ndarray) -> np.ndarray | None:
    """Locate the code with OpenCV and warp it to an upright square with a quiet zone.

    Strong perspective defeats zbar's and zxing's finder-pattern geometry; after the warp
    the code is a plain square. Detection runs on a ≤1 MP copy (the slow part), the warp
    samples the full working image.
    """
    pixels = image.shape[0] * image.shape[1]
    factor = min(1.0, (_LOCATE_MAX_PIXELS / pixels) ** 0.5)
    small = _resize(image, factor) if factor < 1.0 else image
    found, points = cv2.QRCodeDetectorAruco().detect(small)
    if not found or points is None:
        found, points = cv2.QRCodeDetector().detect(small)
    if not found or points is None:
        return None
    corners = points.reshape(-1, 2).astype(np.float32) / factor
    if corners.shape != (4, 2) or cv2.contourArea(corners) < 400:
        return None
    side = float(max(np.linalg.norm(corners[i] - corners[(i + 1) % 4]) for i in range(4)))
    side = min(max(side, 400.0), 2000.0)  # ≥ ~5 px/module for dense codes, bounded work
    margin = side * 0.08  # > 4 modules of quiet zone for any version ≥ 6
    far = margin + side
    target = np.array([[margin, margin], [far, margin], [far, far], [margin, far]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    size = int(far + margin)
    return cv2.warpPerspective(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderValue=255)


def _zxing_global(image: np.ndarray) -> list[str]:
    # Whole-image histogram threshold: wins where the local-average window straddles blur or bands.
    return _zxing(image, zxingcpp.Binarizer.GlobalHistogram)


# name -> (variant it is derived from, transform); a transform may return None ("not applicable").
_VARIANTS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray | None]]] = {
    "half": ("original", _half),
    "downscale": ("original", _downscale),
    "invert": ("original", _invert),
    "otsu": ("original", _otsu),
    "adaptive-fine": ("original", _adaptive_fine),
    "adaptive": ("original", _adaptive),
    "smooth-adaptive": ("original", _smooth_adaptive),
    "sharpen": ("original", _sharpen),
    "upscale": ("original", _upscale),
    "median": ("original", _median),
    "clahe": ("original", _clahe),
    "pad": ("original", _pad),
    "rectify": ("original", _rectify),
    "rectify-adaptive": ("rectify", _adaptive),
}

_CASCADE_ENGINES: dict[str, Callable[[np.ndarray], list[str]]] = {
    "zxing": _zxing,
    "zxing-global": _zxing_global,
    "pyzbar": _pyzbar,
}

ZX, ZG, ZB = "zxing", "zxing-global", "pyzbar"

# (variant, engine), in order; the first step that yields any text ends the cascade.
#
# 1. Plain library calls. zxing-cpp goes first: on the benchmark it is ~6x faster than
#    pyzbar at the median (1.6 ms vs 10 ms) and decodes more of the set on its own (90% vs
#    80%), so ~90% of uploads stop after one ~2 ms call. Its second binariser costs ~2 ms.
#    pyzbar (the design card's library) is third: a different finder and binariser, it
#    rescues another share of zxing's misses before any preprocessing is paid for.
# 2. Preprocessing variants, ordered by rescues per millisecond measured over 1,680
#    generated uploads (seeds 7, 11, 12, 21-24): cheap resamplings and thresholds with
#    zxing first, pyzbar (~10x slower per call) on the most productive variants after.
# 3. OpenCV locates the code and the perspective is undone (~40 ms before decoding),
#    for shapes the finders above cannot model.
STEPS: tuple[tuple[str, str], ...] = (
    ("original", ZX),
    ("original", ZG),
    ("original", ZB),
    ("half", ZG),
    ("downscale", ZG),
    ("invert", ZG),
    ("otsu", ZG),
    ("adaptive-fine", ZG),
    ("adaptive", ZX),
    ("adaptive", ZG),
    ("smooth-adaptive", ZX),
    ("sharpen", ZX),
    ("upscale", ZX),
    ("median", ZG),
    ("clahe", ZG),
    ("pad", ZX),
    ("pad", ZG),
    ("adaptive", ZB),
    ("smooth-adaptive", ZB),
    ("otsu", ZB),
    ("rectify", ZB),
    ("rectify", ZX),
    ("rectify", ZG),
    ("rectify-adaptive", ZB),
    ("upscale", ZB),
    ("invert", ZB),
)


def _stage_name(variant: str, engine: str) -> str:
    return engine if variant == "original" else f"{variant}+{engine}"


def cascade(image: np.ndarray, *, budget_s: float = CASCADE_BUDGET_S) -> tuple[list[str], str]:
    """Distinct texts from the first step that finds any, and that step's name.

    Returns ``([], "none")`` when every step failed and ``([], "timeout")`` when the
    budget ran out first. The budget is checked before each step (the first always
    runs); no single step takes more than ~0.2 s on the ≤4 MP working image.
    """
    deadline = time.perf_counter() + budget_s
    work = _cap_pixels(_gray(image), WORK_MAX_PIXELS)
    if min(work.shape) < _MIN_SIDE:
        return [], "none"
    cache: dict[str, np.ndarray | None] = {"original": work}

    def variant(name: str) -> np.ndarray | None:
        if name not in cache:
            parent_name, transform = _VARIANTS[name]
            parent = variant(parent_name)
            cache[name] = None if parent is None else transform(parent)
        return cache[name]

    for index, (name, engine) in enumerate(STEPS):
        if index and time.perf_counter() > deadline:
            return [], "timeout"
        candidate = variant(name)
        if candidate is None:
            continue
        texts = _distinct(_CASCADE_ENGINES[engine](candidate))
        if texts:
            return texts, _stage_name(name, engine)
    return [], "none"


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodeResult:
    """Bytes of an upload → exactly one QR text, or a :class:`DecodeError` with a reason code.

    ``ms`` covers loading and the cascade, i.e. what the upload costs the worker.
    """
    start = time.perf_counter()
    image = load_image(data, max_pixels=max_pixels)
    texts, stage = cascade(image)
    ms = (time.perf_counter() - start) * 1000.0
    if not texts:
        raise DecodeError(NO_CODE_FOUND, f"no QR code found in the image ({stage})")
    if len(texts) > 1:
        raise DecodeError(MULTIPLE_CODES, f"{len(texts)} different QR codes in one image")
    return DecodeResult(texts=tuple(texts), stage=stage, ms=ms)
