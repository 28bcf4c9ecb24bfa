"""Decryption of the CHSI QR text behind one small, replaceable interface.

CHSI (学信网) has not published the cipher or key used in the 图像采集码, so the rest
of the codebase treats the QR text as opaque and only talks to :class:`CodeCipher`.
The project ships two implementations with keys it generates itself (for tests,
the benchmark and the WeChat sandbox):

* ``aes-256-gcm`` — :class:`AesGcmCipher`, 32-byte key,
  text = base64(12-byte nonce ‖ ciphertext ‖ 16-byte tag);
* ``sm4-cbc`` — :class:`Sm4CbcCipher`, 16-byte key,
  text = base64(16-byte IV ‖ PKCS7-padded ciphertext).

Plugging in the real CHSI algorithm once it is known:

1. write a class that satisfies :class:`CodeCipher` (an ``algorithm`` name,
   ``encrypt`` and ``decrypt``); ``decrypt`` must raise :class:`NotChsiCode` when the
   text cannot be a CHSI code at all and :class:`DecryptionFailed` when it has the
   right shape but does not authenticate / unpad / decrypt under the key;
2. register it in ``_REGISTRY`` below with its key length;
3. set ``CODEC_CIPHER_ALGORITHM`` to its name and ``CODEC_CIPHER_KEY`` to the key
   in standard base64 (see :func:`cipher_from_env`).

Nothing else changes: the decoder never looks inside the text, and the payload
parser only sees the decrypted bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MAX_TEXT_CHARS",
    "AesGcmCipher",
    "CodeCipher",
    "DecryptionFailed",
    "NotChsiCode",
    "Sm4CbcCipher",
    "cipher_from_config",
    "cipher_from_env",
]

#: A QR code holds at most 2953 bytes; anything longer did not come from a QR scan.
MAX_TEXT_CHARS = 3000
#: Plaintext cap on encrypt, so we never mint a text no QR version can hold.
MAX_PLAINTEXT_BYTES = 2048

ENV_ALGORITHM = "CODEC_CIPHER_ALGORITHM"
ENV_KEY = "CODEC_CIPHER_KEY"


class NotChsiCode(Exception):
    """The text cannot be a CHSI code: not base64, wrong length, a URL, ..."""


class DecryptionFailed(Exception):
    """The text has the right shape but does not decrypt under the configured key."""


@runtime_checkable
class CodeCipher(Protocol):
    """What the codec needs from a cipher: opaque text in, plaintext bytes out."""

    algorithm: str

    def encrypt(self, plaintext: bytes) -> str:
        """Produce the QR text for ``plaintext`` (tests, benchmark, sandbox)."""
        ...

    def decrypt(self, text: str) -> bytes:
        """Return the plaintext or raise :class:`NotChsiCode` / :class:`DecryptionFailed`."""
        ...


def _unbase64(text: str, *, min_len: int) -> bytes:
    """Strictly decode the text; scanners may add a trailing newline, nothing else is tolerated."""
    if not isinstance(text, str):
        raise NotChsiCode("QR text must be a str")
    stripped = text.strip()
    if not stripped:
        raise NotChsiCode("empty text")
    if len(stripped) > MAX_TEXT_CHARS:
        raise NotChsiCode(f"text longer than {MAX_TEXT_CHARS} characters")
    if not stripped.isascii():
        raise NotChsiCode("text is not base64")
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotChsiCode("text is not base64") from exc
    if len(raw) < min_len:
        raise NotChsiCode(f"decoded text is {len(raw)} bytes, shorter than {min_len}")
    return raw


def _check_plaintext(plaintext: bytes) -> None:
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext longer than {MAX_PLAINTEXT_BYTES} bytes")


class AesGcmCipher:
    """AES-256-GCM: authenticated, so a wrong key or a flipped bit is always detected."""

    algorithm = "aes-256-gcm"
    key_size = 32
    _NONCE = 12
    _TAG = 16

    def __init__(self, key: bytes, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        """``random_bytes`` exists only so seeded fixtures are reproducible; production keeps os.urandom."""
        if len(key) != self.key_size:
            raise ValueError(f"{self.algorithm} needs a {self.key_size}-byte key, got {len(key)} bytes")
        self._aead = AESGCM(key)
        self._random = random_bytes

    def __repr__(self) -> str:  # never leak the key into logs
        return f"{type(self).__name__}(key=<redacted>)"

    def encrypt(self, plaintext: bytes) -> str:
        """Fresh random nonce per call, so equal plaintexts give different codes."""
        _check_plaintext(plaintext)
        nonce = self._random(self._NONCE)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, None)).decode("ascii")

    def decrypt(self, text: str) -> bytes:
        """Reject anything shorter than nonce + tag + 1 byte as not ours before touching the key."""
        raw = _unbase64(text, min_len=self._NONCE + self._TAG + 1)
        try:
            return self._aead.decrypt(raw[: self._NONCE], raw[self._NONCE :], None)
        except InvalidTag as exc:
            raise DecryptionFailed("authentication tag does not verify") from exc


class Sm4CbcCipher:
    """SM4-CBC with PKCS7; unauthenticated, so callers must validate the plaintext (see payload.py)."""

    algorithm = "sm4-cbc"
    key_size = 16
    _BLOCK = 16

    def __init__(self, key: bytes, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        """``random_bytes`` exists only so seeded fixtures are reproducible; production keeps os.urandom."""
        if len(key) != self.key_size:
            raise ValueError(f"{self.algorithm} needs a {self.key_size}-byte key, got {len(key)} bytes")
        self._key = key
        self._random = random_bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key=<redacted>)"

    def encrypt(self, plaintext: bytes) -> str:
        """Random IV per call, prepended to the ciphertext."""
        _check_plaintext(plaintext)
        iv = self._random(self._BLOCK)
        padder = padding.PKCS7(self._BLOCK * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.SM4(self._key), modes.CBC(iv)).encryptor()
        return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode("ascii")

    def decrypt(self, text: str) -> bytes:
        """A length that is not IV + whole blocks cannot be ours: NotChsiCode, not DecryptionFailed."""
        raw = _unbase64(text, min_len=2 * self._BLOCK)
        if len(raw) % self._BLOCK:
            raise NotChsiCode(f"decoded text is {len(raw)} bytes, not IV + whole SM4 blocks")
        dec = Cipher(algorithms.SM4(self._key), modes.CBC(raw[: self._BLOCK])).decryptor()
        padded = dec.update(raw[self._BLOCK :]) + dec.finalize()
        unpadder = padding.PKCS7(self._BLOCK * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise DecryptionFailed("PKCS7 padding is invalid (wrong key or tampered text)") from exc


_REGISTRY: dict[str, tuple[Callable[[bytes], CodeCipher], int]] = {
    AesGcmCipher.algorithm: (AesGcmCipher, AesGcmCipher.key_size),
    Sm4CbcCipher.algorithm: (Sm4CbcCipher, Sm4CbcCipher.key_size),
}


def cipher_from_config(algorithm: str, key_b64: str) -> CodeCipher:
    """Build the configured cipher; errors name the problem but never echo the key."""
    name = algorithm.strip().lower()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown cipher algorithm {algorithm!r}; expected one of: {known}")
    factory, key_size = _REGISTRY[name]
    try:
        key = base64.b64decode(key_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"cipher key for {name} is not valid base64") from exc
    if len(key) != key_size:
        raise ValueError(f"{name} needs a {key_size}-byte key, the configured key is {len(key)} bytes")
    return factory(key)


def cipher_from_env(env: Mapping[str, str] | None = None) -> CodeCipher:
    """Read ``CODEC_CIPHER_ALGORITHM`` and ``CODEC_CIPHER_KEY`` (base64)."""
    source = os.environ if env is None else env
    missing = [k for k in (ENV_ALGORITHM, ENV_KEY) if not source.get(k)]
    if missing:
        raise ValueError(f"missing configuration: {', '.join(missing)}")
    return cipher_from_config(source[ENV_ALGORITHM], source[ENV_KEY])
