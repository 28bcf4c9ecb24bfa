"""CHSI-like collection codes made by the tests: records, QR texts, and images of them."""

from __future__ import annotations

import base64
import io

import segno
from PIL import Image

from services.codec.cipher import AesGcmCipher
from services.codec.payload import ChsiRecord, encode_record
from tests.conftest import CIPHER_KEY

CIPHER = AesGcmCipher(base64.b64decode(CIPHER_KEY))

RECORD = ChsiRecord(
    chsi_id="c3f1e2d4a5b6978812345678",
    name="赵小明",
    student_number="2110216052",
    id_masked="**************2(3)",
    school_code="10487",
    school_name="华中科技大学",
    education_category="普通本专科",
    level="专科",
    department="临床医学院",
    class_name="2021级口腔医学16班",
)
CLAIM = {"name": "赵小明", "student_number": "2110216052", "id_last4": "2(3)"}


def code_text(record: ChsiRecord = RECORD, cipher: AesGcmCipher = CIPHER) -> str:
    return encode_record(record, cipher)


def qr_image(*texts: str, fmt: str = "PNG", scale: int = 6, quality: int = 90) -> bytes:
    """One or more QR codes side by side on a white canvas, encoded as PNG or JPEG."""
    codes = []
    for text in texts:
        buf = io.BytesIO()
        segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
        codes.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    width = sum(c.width for c in codes) + 40 * (len(codes) + 1)
    height = max(c.height for c in codes) + 80
    canvas = Image.new("RGB", (width, height), "white")
    x = 40
    for c in codes:
        canvas.paste(c, (x, 40))
        x += c.width + 40
    out = io.BytesIO()
    canvas.save(out, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()


def blank_image(fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 220, 240)).save(out, format=fmt)
    return out.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims width × height pixels (a decompression bomb); a few KB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (width // 8 + 1)
    idat = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
