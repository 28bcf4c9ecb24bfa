"""Decoding cascade and image loading: every image is generated here with segno + Pillow/OpenCV."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
import segno
from PIL import Image, ImageFile

from services.codec.cipher import AesGcmCipher, NotChsiCode
from services.codec.decode import (
    DecodeError,
    DecodeResult,
    cascade,
    decode_image,
    decode_with,
    load_image,
)

FIRST_STAGE = "zxing"
PLAIN_STAGES = {"zxing", "zxing-global", "pyzbar"}


# --- helpers ------------------------------------------------------------------------------------------


def chsi_like_text(seed: int = 1) -> str:
    """A dense, CHSI-sized QR text (~340 base64 chars), reproducible."""
    rng = random.Random(seed)
    cipher = AesGcmCipher(rng.randbytes(32), random_bytes=rng.randbytes)
    return cipher.encrypt(rng.randbytes(230))


def qr_array(text: str, module: int = 4, border: int = 4) -> np.ndarray:
    """Grayscale uint8 code, 0 = dark, 255 = light."""
    qr = segno.make_qr(text, error="m")
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    img = np.where(matrix > 0, 0, 255).astype(np.uint8)
    img = np.pad(img, border, constant_values=255)
    return np.kron(img, np.ones((module, module), dtype=np.uint8))


def png_bytes(img: np.ndarray | Image.Image) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(img: np.ndarray | Image.Image, quality: int = 90, **kwargs: object) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def zero_png(width: int, height: int, rows_per_block: int = 100) -> bytes:
    """A valid all-black grey PNG built by hand, without ever holding its pixels.

    After a full flush zlib restarts with an empty dictionary, so every further block of
    zero rows compresses to the same bytes: the stream is one block repeated. For all-zero
    data adler32 is (n mod 65521) << 16 | 1.
    """

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    assert height % rows_per_block == 0
    block = bytes((width + 1) * rows_per_block)  # filter byte 0 + zero pixels, per row
    comp = zlib.compressobj(9)
    head = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    body = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    assert body == comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    adler = (((width + 1) * height % 65521) << 16) | 1
    final_empty_block = b"\x03\x00"
    idat = head + body * (height // rows_per_block - 1) + final_empty_block + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def text() -> str:
    return chsi_like_text()


# --- happy paths --------------------------------------------------------------------------------------


def test_clean_png_decodes_in_first_stage(text: str) -> None:
    result = decode_image(png_bytes(qr_array(text)))
    assert isinstance(result, DecodeResult)
    assert result.texts == (text,)
    assert result.stage == FIRST_STAGE
    assert result.ms > 0


def test_clean_jpeg_decodes(text: str) -> None:
    rgb = Image.fromarray(qr_array(text)).convert("RGB")
    result = decode_image(jpeg_bytes(rgb, quality=85))
    assert result.texts == (text,)


def test_text_is_returned_exactly_including_non_ascii() -> None:
    url_and_chinese = "学信网 图像采集码 https://my.chsi.com.cn/archive/?x=1&y=ä"
    result = decode_image(png_bytes(qr_array(url_and_chinese, module=6)))
    assert result.texts == (url_and_chinese,)


@pytest.mark.parametrize(
    ("orientation", "stored_rotation"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_exif_orientation_is_applied(orientation: int, stored_rotation: Image.Transpose) -> None:
    # Upright scene: 120 wide × 60 high, dark left half. The camera stores it sideways plus a tag.
    upright = np.full((60, 120), 255, dtype=np.uint8)
    upright[:, :60] = 0
    stored = Image.fromarray(upright).transpose(stored_rotation)
    assert stored.size == (60, 120)
    exif = Image.Exif()
    exif[0x0112] = orientation
    loaded = load_image(jpeg_bytes(stored, quality=95, exif=exif.tobytes()))
    assert loaded.shape == (60, 120)
    assert loaded[:, :50].mean() < 30
    assert loaded[:, 70:].mean() > 225


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_phone_jpeg_decodes(text: str, orientation: int) -> None:
    stored = Image.fromarray(qr_array(text)).transpose(Image.Transpose.ROTATE_90).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = decode_image(jpeg_bytes(stored, quality=90, exif=exif.tobytes()))
    assert result.texts == (text,)


def test_degraded_photo_needs_a_later_stage(text: str) -> None:
    # Defocus (σ ≈ half a module), a shadow across the code, sensor noise, JPEG: a bad phone photo.
    img = qr_array(text, module=5).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.4)
    img *= np.linspace(0.45, 1.0, img.shape[1], dtype=np.float32)[None, :]
    img += np.random.default_rng(3).normal(0, 12, img.shape).astype(np.float32)
    data = jpeg_bytes(np.clip(img, 0, 255).astype(np.uint8), quality=80)

    loaded = load_image(data)
    assert decode_with("zxing", loaded) == []
    assert decode_with("pyzbar", loaded) == []
    result = decode_image(data)
    assert result.texts == (text,)
    assert result.stage != FIRST_STAGE
    assert result.stage not in PLAIN_STAGES


def test_transparent_png_is_flattened_on_white(text: str) -> None:
    # Dark modules opaque, everything else fully transparent *black*: naive conversion sees all black.
    code = qr_array(text)
    rgba = np.zeros((*code.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(code == 0, 255, 0)
    assert decode_image(png_bytes(Image.fromarray(rgba, "RGBA"))).texts == (text,)


def test_dark_mode_inverted_code_decodes(text: str) -> None:
    assert decode_image(png_bytes(255 - qr_array(text))).texts == (text,)


def test_tight_crop_without_quiet_zone_decodes(text: str) -> None:
    assert decode_image(png_bytes(qr_array(text, border=0))).texts == (text,)


def test_same_code_twice_counts_as_one(text: str) -> None:
    code = qr_array(text)
    result = decode_image(png_bytes(np.hstack([code, code])))
    assert result.texts == (text,)


def test_url_qr_decodes_but_is_not_a_chsi_code() -> None:
    url = "https://weixin.qq.com/r/abcdefghijklmnop"
    result = decode_image(png_bytes(qr_array(url, module=6)))
    assert result.texts == (url,)
    with pytest.raises(NotChsiCode):
        AesGcmCipher(bytes(32)).decrypt(result.texts[0])


# --- single engines -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["pyzbar", "zxing", "opencv"])
def test_each_engine_reads_a_simple_code(engine: str) -> None:
    img = qr_array("CHSI-ENGINE-CHECK-0123456789", module=8)
    assert decode_with(engine, img) == ["CHSI-ENGINE-CHECK-0123456789"]
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    assert decode_with(engine, bgr) == ["CHSI-ENGINE-CHECK-0123456789"]


def test_unknown_engine_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        decode_with("quirc", np.zeros((50, 50), dtype=np.uint8))


def test_cascade_reports_stage_and_distinct_texts(text: str) -> None:
    texts, stage = cascade(qr_array(text))
    assert texts == [text]
    assert stage == FIRST_STAGE


# --- failures -----------------------------------------------------------------------------------------


def _code_of(data: bytes, **kwargs: int) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(data, **kwargs)
    return info.value.code


def test_empty_file() -> None:
    assert _code_of(b"") == "empty_file"


def test_text_is_not_an_image() -> None:
    assert _code_of("学号,姓名\n2020123456,赵小明\n".encode()) == "not_an_image"


def test_truncated_jpeg(text: str) -> None:
    data = jpeg_bytes(qr_array(text))
    assert _code_of(data[: len(data) // 2]) == "truncated_image"
    assert _code_of(data[:40]) == "truncated_image"  # header itself cut short


def test_truncated_jpeg_is_refused_even_if_pillow_is_told_to_accept_it(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg_bytes(qr_array(text))
    assert _code_of(data[: len(data) // 2]) == "truncated_image"


def test_truncated_png(text: str) -> None:
    data = png_bytes(qr_array(text))
    assert _code_of(data[: len(data) // 2]) == "truncated_image"


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = zero_png(30_000, 30_000)  # 900 Mpx of zeros in well under a megabyte
    assert len(bomb) < 3_000_000
    start = time.perf_counter()
    assert _code_of(bomb) == "image_too_large"
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_is_a_parameter(text: str) -> None:
    data = png_bytes(qr_array(text))  # ~350×350
    assert _code_of(data, max_pixels=10_000) == "image_too_large"
    with pytest.raises(DecodeError) as info:
        load_image(zero_png(8_000, 6_000))  # 48 Mpx > the 40 Mpx default
    assert info.value.code == "image_too_large"


def test_no_code_found() -> None:
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (480, 640), dtype=np.uint8), (0, 0), 4)
    cv2.putText(scene, "NO CODE HERE 2020123456", (20, 240), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 3)
    assert _code_of(jpeg_bytes(scene)) == "no_code_found"


def test_two_different_codes() -> None:
    first = qr_array(chsi_like_text(1))
    second = qr_array(chsi_like_text(2))
    assert _code_of(png_bytes(np.hstack([first, second]))) == "multiple_codes"


def test_cascade_is_bounded_on_a_40_megapixel_noise_image() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (5_000, 8_000), dtype=np.uint8)
    start = time.perf_counter()
    texts, stage = cascade(noise)
    elapsed = time.perf_counter() - start
    assert texts == []
    assert stage in {"none", "timeout"}
    assert elapsed < 2.0


def test_tiny_image_has_no_code() -> None:
    assert cascade(np.full((5, 5), 255, dtype=np.uint8)) == ([], "none")
