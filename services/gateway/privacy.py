"""Personal data at rest: phone numbers are encrypted (AES-256-GCM) and shown masked (PIPL)."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.logging import mask_phone


class FieldCipher:
    """Encrypts one field value; the key comes from GATEWAY_DATA_KEY (base64, 32 bytes)."""

    def __init__(self, key_b64: str) -> None:
        key = base64.b64decode(key_b64, validate=True)
        if len(key) != 32:
            raise ValueError("GATEWAY_DATA_KEY must be 32 bytes, base64-encoded")
        self._aead = AESGCM(key)

    def encrypt(self, value: str, *, context: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, value.encode(), context.encode())).decode()

    def decrypt(self, token: str, *, context: str) -> str:
        raw = base64.b64decode(token)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


__all__ = ["FieldCipher", "mask_phone"]
