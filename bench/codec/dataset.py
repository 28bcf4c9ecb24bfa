"""Seeded generator of QR uploads that look like what students actually send.

Every sample carries a CHSI-like QR text (a random :class:`ChsiRecord` encrypted with
AES-256-GCM under a seeded key, ~300-400 base64 characters, so a dense version 13-16
code like the real 图像采集码) rendered and then degraded in one of ten ways. Images are
encoded to PNG/JPEG bytes in memory, exactly what the upload endpoint would receive.

Severities are chosen to match real uploads, not to be easy: a screenshot's code is
~25% of the width, low-quality JPEG goes down to q10, downscaled codes are 120-180 px
(~1.5-2.3 px per module), perspective goes up to ~45° of tilt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import segno

from services.codec.cipher import AesGcmCipher
from services.codec.payload import ChsiRecord, encode_record

__all__ = ["CATEGORIES", "Sample", "generate", "qr_modules", "random_record", "render_code"]

CATEGORIES: tuple[str, ...] = (
    "clean_png",
    "jpeg_lowq",
    "downscaled",
    "rotated",
    "blurred",
    "low_contrast",
    "screenshot",
    "monitor_photo",
    "perspective",
    "noise",
)

QUIET = 4  # modules of quiet zone around the symbol, as CHSI's page renders it


@dataclass(frozen=True)
class Sample:
    """One upload: encoded bytes plus what a correct decoder must return."""

    category: str
    index: int
    data: bytes
    expected: str
    fmt: str


_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国志红玉兰晓春雪梅思雨欣怡子涵浩然宇轩佳琪"
_SCHOOLS = (
    ("10001", "北京大学"),
    ("10003", "清华大学"),
    ("10486", "武汉大学"),
    ("10487", "华中科技大学"),
    ("10558", "中山大学"),
    ("10284", "南京大学"),
    ("10335", "浙江大学"),
    ("12345", "湖北职业技术学院"),
    ("13579", "深圳信息职业技术学院"),
)
_CATEGORIES_EDU = ("普通高等教育", "成人高等教育", "高等教育自学考试", "网络教育", "普通全日制")
_LEVELS = ("本科", "专科", "硕士研究生", "博士研究生", "专升本")
_DEPTS = ("计算机学院", "外国语学院", "经济与管理学院", "机械工程学院", "", "马克思主义学院", "信息工程分院")
_MAJORS = ("计科", "软工", "英语", "会计", "机电", "电商", "法学")


def random_record(rng: random.Random) -> ChsiRecord:
    """A plausible record; ID formats cover mainland (with X) and bracketed HK/Macau tails."""
    name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2, 3))))
    kind = rng.random()
    if kind < 0.5:
        tail = f"{rng.randrange(1000):03d}" + rng.choice("0123456789X")
        id_masked = f"{rng.randrange(1100, 6600)}" + "*" * 10 + tail
    elif kind < 0.85:
        id_masked = "*" * 14 + f"{rng.randrange(10000):04d}"
    else:
        id_masked = "*" * 14 + f"{rng.randrange(10)}({rng.choice('0123456789A')})"
    code, school = rng.choice(_SCHOOLS)
    year = rng.randrange(2018, 2025)
    return ChsiRecord(
        chsi_id="".join(
            rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(rng.randrange(10, 17))
        ),
        name=name,
        student_number=f"{year}{rng.randrange(10**6, 10**8)}",
        id_masked=id_masked,
        school_code=code,
        school_name=school,
        education_category=rng.choice(_CATEGORIES_EDU),
        level=rng.choice(_LEVELS),
        department=rng.choice(_DEPTS),
        class_name=f"{rng.choice(_MAJORS)}{year % 100:02d}{rng.randrange(1, 9):02d}班",
    )


def qr_modules(text: str) -> np.ndarray:
    """Module matrix (uint8, 0 = dark, 255 = light) with the quiet zone, error level M."""
    qr = segno.make_qr(text, error="m", boost_error=False)
    matrix = np.array([np.frombuffer(bytes(row), dtype=np.uint8) for row in qr.matrix])
    return np.pad(np.where(matrix > 0, 0, 255).astype(np.uint8), QUIET, constant_values=255)


def render_code(modules: np.ndarray, size_px: int) -> np.ndarray:
    """Render at an arbitrary (fractional) module size with area averaging, like a screen or scaler does."""
    k = max(1, int(np.ceil(size_px / modules.shape[0])) * 2)
    big = np.kron(modules, np.ones((k, k), dtype=np.uint8))
    return cv2.resize(big, (size_px, size_px), interpolation=cv2.INTER_AREA)


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return buf.tobytes()


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _bgr(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _place(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    canvas[y : y + img.shape[0], x : x + img.shape[1]] = img


def _on_background(
    code: np.ndarray, rng: np.random.Generator, margin: tuple[float, float] = (0.1, 0.5)
) -> np.ndarray:
    """Code on a light page with a little margin, like a crop of the CHSI page."""
    h = code.shape[0]
    pad = [int(h * rng.uniform(*margin)) for _ in range(4)]
    bg = int(rng.integers(235, 256))
    out = np.full((h + pad[0] + pad[1], h + pad[2] + pad[3]), bg, dtype=np.uint8)
    _place(out, np.minimum(code, bg), pad[2], pad[0])
    return out


# --- categories -----------------------------------------------------------------------------------


def _clean_png(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    code = render_code(mod, int(mod.shape[0] * rng.uniform(3.0, 8.0)))
    return _png(_on_background(code, rng)), "png"


def _jpeg_lowq(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    code = render_code(mod, int(mod.shape[0] * rng.uniform(3.0, 6.0)))
    return _jpeg(_bgr(_on_background(code, rng)), int(rng.integers(10, 31))), "jpeg"


def _downscaled(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    # "code ~120-180 px wide": the symbol itself, quiet zone not counted.
    symbol_px = rng.uniform(120, 180)
    code = render_code(mod, round(symbol_px * mod.shape[0] / (mod.shape[0] - 2 * QUIET)))
    img = _on_background(code, rng, (0.05, 0.3))
    return _jpeg(_bgr(img), int(rng.integers(80, 96))), "jpeg"


def _rotated(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    code = _on_background(render_code(mod, int(mod.shape[0] * rng.uniform(3.0, 5.0))), rng, (0.3, 0.5))
    h, w = code.shape
    angle = float(rng.uniform(0, 360))
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    rot[0, 2] += nw / 2 - w / 2
    rot[1, 2] += nh / 2 - h / 2
    bg = int(code[0, 0])
    out = cv2.warpAffine(code, rot, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=bg)
    return _jpeg(_bgr(out), int(rng.integers(80, 96))), "jpeg"


def _blurred(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    module_px = rng.uniform(4.0, 6.0)
    img: np.ndarray = _on_background(render_code(mod, int(mod.shape[0] * module_px)), rng).astype(np.float32)
    if rng.random() < 0.5:  # defocus
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=module_px * rng.uniform(0.35, 0.55))
    else:  # hand shake: linear motion blur in a random direction
        length = max(3, int(module_px * rng.uniform(0.8, 1.4)))
        kernel: np.ndarray = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    return _jpeg(_bgr(np.clip(img, 0, 255).astype(np.uint8)), int(rng.integers(80, 96))), "jpeg"


def _low_contrast(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    img = _on_background(render_code(mod, int(mod.shape[0] * rng.uniform(3.5, 6.0))), rng).astype(np.float32)
    dark = rng.uniform(90, 150)
    light = dark + rng.uniform(35, 60)  # a dim, washed-out screen or a faded print
    img = dark + (img / 255.0) * (light - dark)
    h, w = img.shape
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-15, 15)
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * rng.uniform(-15, 15)
    img = np.clip(img + gx + gy, 0, 255).astype(np.uint8)
    return _jpeg(_bgr(img), int(rng.integers(75, 92))), "jpeg"


def _text_lines(canvas: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int) -> None:
    """Fill a region with text-like clutter: real glyph strokes, the main trap for locators."""
    y = y0
    while y < y1 - 20:
        scale = float(rng.uniform(0.9, 1.6)) * canvas.shape[1] / 1080
        words = "".join(
            rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789:*() ")) for _ in range(rng.integers(8, 30))
        )
        colour = tuple(int(c) for c in rng.integers(20, 120, 3))
        cv2.putText(
            canvas, words, (x0, y + int(25 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA
        )
        y += int(rng.uniform(40, 70) * scale)


def _screenshot(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    width = int(rng.choice([750, 828, 1080, 1125, 1170, 1242, 1440]))
    height = int(width * rng.uniform(16 / 9, 19.5 / 9))
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    canvas[: int(height * 0.12)] = rng.integers(0, 256, 3).astype(np.uint8)  # status + title bar
    canvas[-int(height * 0.07) :] = (247, 247, 247)  # tab bar
    for i in range(4):
        cx = int(width * (i + 0.5) / 4)
        cv2.circle(canvas, (cx, height - int(height * 0.04)), int(width * 0.025), (150, 150, 150), 2)
    cv2.putText(
        canvas, "12:34", (int(width * 0.05), int(height * 0.03)), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255,) * 3, 2
    )
    code_px = int(width * rng.uniform(0.22, 0.3))
    code = render_code(mod, code_px)
    x = int(rng.uniform(0.05, 0.95) * (width - code_px))
    y = int(height * rng.uniform(0.15, 0.92 - code_px / height))
    _text_lines(canvas, rng, int(width * 0.05), int(height * 0.14), int(width * 0.95), y - 10)
    _text_lines(canvas, rng, int(width * 0.05), y + code_px + 10, int(width * 0.95), int(height * 0.9))
    _place(canvas, _bgr(code), x, y)
    return _jpeg(canvas, int(rng.integers(70, 92))), "jpeg"


def _monitor_photo(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Phone photo of the CHSI page on a monitor: pixel grid, moiré, perspective, glare, noise."""
    sw, sh = int(rng.uniform(1000, 1300)), 700  # screen pixels in view
    screen = np.full((sh, sw), 250, dtype=np.uint8)
    code_px = int(rng.uniform(260, 380))
    cx0 = (sw - code_px) // 2 + int(rng.integers(-150, 150))
    _place(screen, render_code(mod, code_px), cx0, (sh - code_px) // 2)
    # Each screen pixel as 3x3 sub-pixels with dark gaps: the grid the camera aliases into moiré.
    sub = 3
    cell = np.full((sub, sub), 1.0, np.float32)
    cell[-1, :] = cell[:, -1] = rng.uniform(0.35, 0.65)
    panel: np.ndarray = np.kron(screen.astype(np.float32), np.ones((sub, sub), np.float32)) * np.tile(
        cell, (sh, sw)
    )
    ph, pw = panel.shape
    out_w = int(rng.uniform(1280, 1920))
    out_h = int(out_w * 0.75)
    scale = out_w * rng.uniform(0.75, 0.95) / pw
    cx, cy = out_w / 2 + rng.uniform(-60, 60), out_h / 2 + rng.uniform(-40, 40)
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32)
    dst = np.array([[cx + (x - pw / 2) * scale, cy + (y - ph / 2) * scale] for x, y in src], dtype=np.float32)
    dst += rng.uniform(-0.07, 0.07, dst.shape).astype(np.float32) * out_w
    matrix = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(panel, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=-1.0)
    # Explicit interference bands on the panel (beat between sensor and pixel pitch), 15-35% deep.
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(5, 18)
    warp = rng.uniform(0.0001, 0.0003)  # bands curve because of the perspective
    along = xx * np.cos(theta) + yy * np.sin(theta)
    phase = (along + warp * (xx - out_w / 2) ** 2) * (2 * np.pi / period)
    depth = rng.uniform(0.15, 0.35)
    photo = np.where(
        photo >= 0, photo * (1 - depth * (0.5 + 0.5 * np.cos(phase))), float(rng.uniform(30, 90))
    )
    gx, gy = rng.uniform(0, out_w), rng.uniform(0, out_h)
    radius = rng.uniform(0.2, 0.45) * out_w
    glare = rng.uniform(40, 110) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2))
    photo = photo * rng.uniform(0.7, 0.95) + glare
    photo = cv2.GaussianBlur(photo, (0, 0), sigmaX=rng.uniform(0.5, 1.0))
    photo += rng.normal(0, rng.uniform(3, 9), photo.shape).astype(np.float32)
    tint = rng.uniform(0.85, 1.1, 3)
    bgr = np.clip(photo[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
    return _jpeg(bgr, int(rng.integers(65, 90))), "jpeg"


def _perspective(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    code = _on_background(render_code(mod, int(mod.shape[0] * rng.uniform(4.0, 6.0))), rng, (0.1, 0.2))
    h, w = code.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    # Strong keystone: one side shrunk by 25-40% (~40-50° of tilt) plus corner jitter.
    shrink = rng.uniform(0.25, 0.4)
    dst = src.copy()
    side = int(rng.integers(4))
    a, b = side, (side + 1) % 4
    centre = (src[a] + src[b]) / 2
    dst[a] = centre + (src[a] - centre) * (1 - shrink)
    dst[b] = centre + (src[b] - centre) * (1 - shrink)
    dst += rng.uniform(-0.05, 0.05, dst.shape).astype(np.float32) * w
    dst -= dst.min(axis=0)
    out_w, out_h = int(dst[:, 0].max()) + 1, int(dst[:, 1].max()) + 1
    matrix = cv2.getPerspectiveTransform(src, dst)
    bg = int(rng.integers(60, 200))
    out = cv2.warpPerspective(code, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=bg)
    out = np.pad(out, 40, constant_values=bg)
    return _jpeg(_bgr(out), int(rng.integers(80, 95))), "jpeg"


def _noise(mod: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    img = _on_background(render_code(mod, int(mod.shape[0] * rng.uniform(3.0, 5.0))), rng).astype(np.float32)
    img += rng.normal(0, rng.uniform(25, 45), img.shape).astype(np.float32)  # high-ISO sensor noise
    salt = rng.random(img.shape) < rng.uniform(0.0, 0.02)
    img[salt] = rng.choice([0.0, 255.0], int(salt.sum()))
    return _jpeg(_bgr(np.clip(img, 0, 255).astype(np.uint8)), int(rng.integers(85, 96))), "jpeg"


_MAKERS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[bytes, str]]] = {
    "clean_png": _clean_png,
    "jpeg_lowq": _jpeg_lowq,
    "downscaled": _downscaled,
    "rotated": _rotated,
    "blurred": _blurred,
    "low_contrast": _low_contrast,
    "screenshot": _screenshot,
    "monitor_photo": _monitor_photo,
    "perspective": _perspective,
    "noise": _noise,
}


def generate(n: int = 240, seed: int = 7) -> list[Sample]:
    """``n`` samples (rounded down to a multiple of the category count), fully determined by ``seed``."""
    per = max(1, n // len(CATEGORIES))
    py_rng = random.Random(seed)
    key = py_rng.randbytes(32)
    cipher = AesGcmCipher(key, random_bytes=py_rng.randbytes)
    samples: list[Sample] = []
    for c_index, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, c_index])
        for i in range(per):
            text = encode_record(random_record(py_rng), cipher)
            data, fmt = _MAKERS[category](qr_modules(text), rng)
            samples.append(Sample(category=category, index=i, data=data, expected=text, fmt=fmt))
    return samples
