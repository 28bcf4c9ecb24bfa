"""Bad input never crashes the imaging pipeline: each kind of file gets a stable code or a verdict."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from services.imaging.config import PhotoStandard
from services.imaging.load import PhotoError, choose_reduction, open_photo
from services.imaging.pipeline import check_photo
from services.imaging.preprocess import FaceModels
from tests.support import faces

STANDARD = PhotoStandard()


def pil_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image with a tiny compressed body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (width + 1) * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"hello, this is not a photo", "not_an_image"),
        (b"%PDF-1.4\n" + bytes(100), "not_an_image"),
        (HEIC, "unsupported_format"),
        (png_bomb(30000, 30000), "image_too_large"),
        (pil_bytes(Image.new("RGB", (1, 1)), "JPEG"), "image_too_small"),
        (pil_bytes(Image.new("RGB", (20000, 100)), "JPEG"), "image_too_small"),
    ],
    ids=["empty", "text", "pdf", "heic", "bomb", "1x1", "20000x100"],
)
def test_unusable_files_get_a_stable_code(models: FaceModels, data: bytes, code: str) -> None:
    report = check_photo(data, models, standard=STANDARD)
    assert report.error == code and report.reasons == [code] and not report.ok
    assert report.measures == [] and report.jpeg is None


def test_a_bomb_is_refused_from_the_header_without_decoding() -> None:
    with pytest.raises(PhotoError) as err:
        open_photo(png_bomb(30000, 30000), max_bytes=1 << 24, max_pixels=50_000_000, min_side=240)
    assert err.value.code == "image_too_large"


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_jpeg(models: FaceModels, cut: float) -> None:
    data = faces.jpeg(faces.hopper())
    report = check_photo(data[: int(len(data) * cut)], models, standard=STANDARD)
    assert report.error == "truncated_image"


def test_truncated_png(models: FaceModels) -> None:
    data = pil_bytes(Image.fromarray(faces.hopper()), "PNG")
    assert check_photo(data[: len(data) // 2], models, standard=STANDARD).error == "truncated_image"


def test_too_many_bytes_is_refused_before_parsing() -> None:
    with pytest.raises(PhotoError) as err:
        open_photo(b"\xff\xd8\xff" + bytes(2000), max_bytes=1024, max_pixels=10**8, min_side=16)
    assert err.value.code == "image_too_large"


def test_cmyk_jpeg_is_judged(models: FaceModels) -> None:
    data = pil_bytes(Image.fromarray(faces.hopper()).convert("CMYK"), "JPEG", quality=92)
    report = check_photo(data, models, standard=STANDARD)
    assert report.error is None and report.jpeg is not None
    assert report.reasons == faces.HOPPER_FAILS


def test_greyscale_jpeg_is_judged_and_refused_as_not_colour(models: FaceModels) -> None:
    data = pil_bytes(Image.fromarray(faces.hopper()).convert("L"), "JPEG", quality=92)
    report = check_photo(data, models, standard=STANDARD)
    assert report.error is None and "not_colour" in report.reasons
    # The output is 24-bit colour all the same.
    assert Image.open(io.BytesIO(report.jpeg or b"")).mode == "RGB"


def test_png_with_alpha_is_flattened_and_judged(models: FaceModels) -> None:
    rgba = np.dstack([faces.hopper(), np.full(faces.hopper().shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent strip
    report = check_photo(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), models, standard=STANDARD)
    assert report.error is None and report.reasons == faces.HOPPER_FAILS


def test_exif_orientation_is_applied(models: FaceModels) -> None:
    # Stored lying on its side, with the tag saying "rotate 90° clockwise to display" (6).
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(faces.hopper())))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = pil_bytes(sideways, "JPEG", quality=92, exif=exif.tobytes())
    photo = open_photo(data, max_bytes=1 << 24, max_pixels=10**8, min_side=16)
    assert photo.rgb.shape[:2] == faces.hopper().shape[:2] and photo.full_size == (512, 600)
    assert check_photo(data, models, standard=STANDARD).reasons == faces.HOPPER_FAILS


def test_large_jpegs_are_decoded_reduced_by_dct_scaling() -> None:
    assert choose_reduction(4000, 3000, 1200) == 2
    assert choose_reduction(1600, 1200, 1200) == 1
    assert choose_reduction(8000, 6000, 1200) == 4
    big = np.zeros((3000, 4000, 3), np.uint8)
    photo = open_photo(faces.jpeg(big, 70), max_bytes=1 << 26, max_pixels=50_000_000, min_side=240)
    # The default keeps the short side ≥ 700 px: 1/4 scale for 12 MP, a full decode for 2 MP.
    assert photo.reduction == 4 and photo.rgb.shape == (750, 1000, 3) and photo.full_size == (4000, 3000)
    assert choose_reduction(1600, 1200, 700) == 1
