"""Codec settings: the CHSI cipher and the limits on what a student may upload."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.config import Settings


class CodecSettings(Settings):
    service_name: str = "codec"
    http_port: int = 8181
    # The CHSI cipher: algorithm name and base64 key (from a Kubernetes Secret in production).
    codec_cipher_algorithm: str = "aes-256-gcm"
    codec_cipher_key: SecretStr
    # An uploaded code image: bytes and pixels (a decompression bomb is refused before decoding).
    codec_max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    codec_max_pixels: int = Field(default=40_000_000, ge=10_000)
    codec_max_text_chars: int = Field(default=3000, ge=64)
