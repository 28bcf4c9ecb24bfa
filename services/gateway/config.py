"""Gateway settings: HTTP limits for what the mini-program sends."""

from __future__ import annotations

from pydantic import Field

from shared.config import Settings


class GatewaySettings(Settings):
    service_name: str = "gateway"
    http_port: int = 8080
    # A saved code image or screenshot; phones save a few MB at most. Bodies above this get 413.
    gateway_max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    gateway_max_json_bytes: int = Field(default=64 * 1024, ge=1024)
    # Checked from the image header before anything decodes it (decompression bombs).
    gateway_max_image_pixels: int = Field(default=40_000_000, ge=10_000)
    # A QR code holds at most 2,953 bytes: longer "scanner text" did not come from a QR scan.
    gateway_max_qr_text_chars: int = Field(default=3000, ge=64)
