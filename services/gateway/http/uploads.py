"""Cheap checks on an uploaded image before it is stored: type by magic bytes, size from the header only."""

from __future__ import annotations

import io
import warnings

from PIL import Image

from services.gateway.http.errors import ApiError

# What every image-upload route can answer besides its own refusals.
IMAGE_UPLOAD_ERRORS = (
    "empty_file",
    "not_an_image",
    "image_too_large",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
)

_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"RIFF": "image/webp",
    b"BM": "image/bmp",
}


def sniff_image(data: bytes, *, max_pixels: int) -> str:
    """The image's content type; raises ApiError for empty, non-image or oversized (bomb) files."""
    if not data:
        raise ApiError(400, "empty_file")
    content_type = next((ct for magic, ct in _MAGIC.items() if data.startswith(magic)), None)
    if content_type is None or (content_type == "image/webp" and data[8:12] != b"WEBP"):
        raise ApiError(415, "not_an_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Image.open reads the header only; no pixel is decoded here.
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "image_too_large") from exc
    except Exception as exc:
        raise ApiError(415, "not_an_image") from exc
    if width * height > max_pixels:
        raise ApiError(413, "image_too_large", width=width, height=height)
    return content_type
