"""Checks on uploaded image bytes that the codec and imaging both make before trusting a decoder."""

from __future__ import annotations


def truncation(data: bytes, fmt: str | None) -> str | None:
    """Why the file is cut short, or None; holds even if some library set Pillow's LOAD_TRUNCATED_IMAGES.

    Entropy-coded JPEG data never contains FF D9 (0xFF is always stuffed), so a complete file has an
    end-of-image marker after its last start-of-scan; a PNG ends with an IEND chunk.
    """
    if fmt == "JPEG":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.rfind(b"\xff\xd9") < last_scan:
            return "JPEG has no end-of-image marker after its scan data"
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        return "PNG has no IEND chunk"
    return None
