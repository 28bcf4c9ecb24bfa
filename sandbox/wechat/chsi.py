"""A CHSI stand-in: mint a roster student's 图像采集码 as CHSI would issue it (QR text and a PNG of it).

The real codes are encrypted by CHSI with a key only the collecting organisation holds (docs/codec.md);
here the configured development key (CODEC_CIPHER_KEY / CODEC_CIPHER_ALGORITHM, var/codec-cipher.key under
`make run`) plays that key. One function (`mint`) behind three doors: the sandbox's control endpoint
`POST /sandbox/chsi/codes`, the CLI `python -m sandbox.wechat.chsi`, and direct calls (the load harness).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import segno
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.codec.cipher import CodeCipher, cipher_from_config
from services.codec.payload import ChsiRecord, encode_record

DEFAULT_KEY_FILE = Path("var/codec-cipher.key")


class CodeRequest(BaseModel):
    """A roster student as CHSI knows them; only name, number, ID tail and school are required."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=50)
    student_number: str = Field(max_length=32)
    id_last4: str = Field(min_length=1, max_length=8, description="what follows the stars, e.g. 2(3)")
    school_code: str = Field(min_length=1, max_length=20)
    school_name: str = Field(default="示范大学", max_length=100)
    education_category: str = Field(default="普通本专科", max_length=50)
    level: str = Field(default="本科", max_length=50)
    department: str = Field(default="", max_length=100)
    class_name: str = Field(default="", max_length=100)
    chsi_id: str | None = Field(default=None, max_length=64)
    scale: int = Field(default=6, ge=2, le=20, description="pixels per QR module in the PNG")

    def record(self) -> ChsiRecord:
        chsi_id = self.chsi_id or f"sandbox-{self.school_code}-{self.student_number or self.name}"
        return ChsiRecord(
            chsi_id=chsi_id,
            name=self.name,
            student_number=self.student_number,
            id_masked="*" * 14 + self.id_last4,  # CHSI shows the ID with every character but the tail starred
            school_code=self.school_code,
            school_name=self.school_name,
            education_category=self.education_category,
            level=self.level,
            department=self.department,
            class_name=self.class_name,
        )


@dataclass(frozen=True)
class MintedCode:
    qr_text: str
    png: bytes

    def answer(self) -> dict[str, Any]:
        return {"qr_text": self.qr_text, "png_base64": base64.b64encode(self.png).decode()}


def qr_png(text: str, *, scale: int = 6, border: int = 4) -> bytes:
    """The QR code as a clean black-on-white PNG. The mask is fixed (every mask decodes the same) and the
    matrix drawn with numpy: segno choosing the mask and writing the PNG costs ~100 ms a code."""
    matrix = np.array(segno.make(text, error="m", micro=False, mask=0).matrix, np.uint8)
    pixels = np.pad(np.where(matrix > 0, 0, 255).astype(np.uint8), border, constant_values=255)
    pixels = np.kron(pixels, np.ones((scale, scale), np.uint8))
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", optimize=False)
    return out.getvalue()


def mint(request: CodeRequest, cipher: CodeCipher) -> MintedCode:
    text = encode_record(request.record(), cipher)
    return MintedCode(text, qr_png(text, scale=request.scale))


def mint_record(record: ChsiRecord, cipher: CodeCipher, *, scale: int = 6, border: int = 4) -> MintedCode:
    """For callers that already hold a full record (the load harness's simulated students)."""
    text = encode_record(record, cipher)
    return MintedCode(text, qr_png(text, scale=scale, border=border))


def cipher_from_settings(key_b64: str | None, algorithm: str = "aes-256-gcm") -> CodeCipher | None:
    return cipher_from_config(algorithm, key_b64) if key_b64 else None


def _key(args: argparse.Namespace) -> str:
    if os.environ.get("CODEC_CIPHER_KEY"):
        return os.environ["CODEC_CIPHER_KEY"]
    path = Path(args.key_file)
    if not path.exists():
        raise SystemExit(f"no CHSI key: set CODEC_CIPHER_KEY or run `make run` once (it makes {path})")
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.wechat.chsi",
        description="Mint a roster student's CHSI collection code (QR text + PNG) with the development key.",
    )
    parser.add_argument("--name", required=True)
    parser.add_argument("--student-number", required=True)
    parser.add_argument("--id-last4", required=True, help="the ID tail after the stars, e.g. 2(3)")
    parser.add_argument("--school-code", default="10487")
    parser.add_argument("--school-name", default="示范大学")
    parser.add_argument("--level", default="本科")
    parser.add_argument("--department", default="")
    parser.add_argument("--class-name", default="")
    parser.add_argument("--png", help="write the code's image here")
    parser.add_argument(
        "--key-file", default=str(DEFAULT_KEY_FILE), help="used when CODEC_CIPHER_KEY is unset"
    )
    args = parser.parse_args(argv)
    try:
        request = CodeRequest(
            name=args.name,
            student_number=args.student_number,
            id_last4=args.id_last4,
            school_code=args.school_code,
            school_name=args.school_name,
            level=args.level,
            department=args.department,
            class_name=args.class_name,
        )
    except ValidationError as exc:
        print(exc, file=sys.stderr)
        return 2
    algorithm = os.environ.get("CODEC_CIPHER_ALGORITHM", "aes-256-gcm")
    try:
        cipher = cipher_from_config(algorithm, _key(args))
    except ValueError as exc:
        print(f"bad CHSI key: {exc}", file=sys.stderr)
        return 2
    code = mint(request, cipher)
    if args.png:
        Path(args.png).write_bytes(code.png)
    print(json.dumps({"qr_text": code.qr_text, "png": args.png}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
