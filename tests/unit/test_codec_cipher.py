"""The replaceable cipher interface: both shipped algorithms, shape checks, key handling."""

from __future__ import annotations

import base64
import random

import pytest

from services.codec.cipher import (
    AesGcmCipher,
    CodeCipher,
    DecryptionFailed,
    NotChsiCode,
    Sm4CbcCipher,
    cipher_from_config,
    cipher_from_env,
)

AES_KEY = bytes(range(32))
SM4_KEY = bytes(range(16))
OTHER_AES_KEY = bytes(range(1, 33))
OTHER_SM4_KEY = bytes(range(1, 17))
PLAINTEXT = '{"xm":"赵小明","xh":"2110216052","zjhm":"**************2(3)"}'.encode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(params=["aes-256-gcm", "sm4-cbc"])
def pair(request: pytest.FixtureRequest) -> tuple[CodeCipher, CodeCipher]:
    """(cipher, same algorithm under another key)."""
    if request.param == "aes-256-gcm":
        return AesGcmCipher(AES_KEY), AesGcmCipher(OTHER_AES_KEY)
    return Sm4CbcCipher(SM4_KEY), Sm4CbcCipher(OTHER_SM4_KEY)


def test_round_trip(pair: tuple[CodeCipher, CodeCipher]) -> None:
    cipher, _ = pair
    text = cipher.encrypt(PLAINTEXT)
    assert text.isascii()
    assert cipher.decrypt(text) == PLAINTEXT


def test_wire_format_lengths() -> None:
    aes = base64.b64decode(AesGcmCipher(AES_KEY).encrypt(PLAINTEXT))
    assert len(aes) == 12 + len(PLAINTEXT) + 16  # nonce + ciphertext + tag
    sm4 = base64.b64decode(Sm4CbcCipher(SM4_KEY).encrypt(PLAINTEXT))
    padded = (len(PLAINTEXT) // 16 + 1) * 16
    assert len(sm4) == 16 + padded  # IV + PKCS7-padded blocks


def test_each_encryption_uses_a_fresh_nonce(pair: tuple[CodeCipher, CodeCipher]) -> None:
    cipher, _ = pair
    assert cipher.encrypt(PLAINTEXT) != cipher.encrypt(PLAINTEXT)


def test_scanner_newline_is_tolerated(pair: tuple[CodeCipher, CodeCipher]) -> None:
    cipher, _ = pair
    assert cipher.decrypt(cipher.encrypt(PLAINTEXT) + "\r\n") == PLAINTEXT


def test_aes_gcm_other_key_fails_authentication() -> None:
    text = AesGcmCipher(OTHER_AES_KEY).encrypt(PLAINTEXT)
    with pytest.raises(DecryptionFailed):
        AesGcmCipher(AES_KEY).decrypt(text)


def test_sm4_other_key_fails_on_padding() -> None:
    # Fixed IV source so the outcome is deterministic: with this key pair the padding breaks.
    rng = random.Random(0)
    text = Sm4CbcCipher(OTHER_SM4_KEY, random_bytes=rng.randbytes).encrypt(PLAINTEXT)
    with pytest.raises(DecryptionFailed, match="padding"):
        Sm4CbcCipher(SM4_KEY).decrypt(text)


@pytest.mark.parametrize("position", ["nonce_or_iv", "middle", "last"])
def test_tampered_aes_text_fails(position: str) -> None:
    raw = bytearray(base64.b64decode(AesGcmCipher(AES_KEY).encrypt(PLAINTEXT)))
    index = {"nonce_or_iv": 0, "middle": len(raw) // 2, "last": len(raw) - 1}[position]
    raw[index] ^= 0x01
    with pytest.raises(DecryptionFailed):
        AesGcmCipher(AES_KEY).decrypt(b64(bytes(raw)))


def test_tampered_sm4_last_block_fails() -> None:
    rng = random.Random(1)
    raw = bytearray(base64.b64decode(Sm4CbcCipher(SM4_KEY, random_bytes=rng.randbytes).encrypt(PLAINTEXT)))
    raw[-1] ^= 0x01  # scrambles the whole final block, padding included
    with pytest.raises(DecryptionFailed):
        Sm4CbcCipher(SM4_KEY).decrypt(b64(bytes(raw)))


@pytest.mark.parametrize(
    "text",
    [
        "https://weixin.qq.com/r/abcdefghijklmnop",  # a URL: ':' and '/' are not base64
        "hello world",
        "学信网图像采集码",
        "",
        "   ",
        "QUJD",  # valid base64, 3 bytes: far too short
        b64(bytes(28)),  # nonce + tag but no ciphertext / one block short
        "A" * 4001,  # longer than any QR code can hold
        b64(bytes(2990)),  # base64 of a maximal binary QR: still over the text limit
        "QUJDRA",  # missing padding
    ],
)
def test_not_a_chsi_code(pair: tuple[CodeCipher, CodeCipher], text: str) -> None:
    cipher, _ = pair
    with pytest.raises(NotChsiCode):
        cipher.decrypt(text)


def test_sm4_length_not_whole_blocks_is_not_a_chsi_code() -> None:
    with pytest.raises(NotChsiCode, match="whole SM4 blocks"):
        Sm4CbcCipher(SM4_KEY).decrypt(b64(bytes(16 + 20)))


def test_keys_of_wrong_length_are_rejected() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        AesGcmCipher(bytes(16))
    with pytest.raises(ValueError, match="16-byte key"):
        Sm4CbcCipher(bytes(32))


def test_repr_never_shows_the_key() -> None:
    assert AES_KEY.hex() not in repr(AesGcmCipher(AES_KEY))
    assert "redacted" in repr(Sm4CbcCipher(SM4_KEY))


def test_shipped_ciphers_satisfy_the_protocol() -> None:
    assert isinstance(AesGcmCipher(AES_KEY), CodeCipher)
    assert isinstance(Sm4CbcCipher(SM4_KEY), CodeCipher)


@pytest.mark.parametrize(
    ("algorithm", "key", "cls"),
    [("aes-256-gcm", AES_KEY, AesGcmCipher), ("SM4-CBC ", SM4_KEY, Sm4CbcCipher)],
)
def test_cipher_from_config(algorithm: str, key: bytes, cls: type) -> None:
    cipher = cipher_from_config(algorithm, b64(key))
    assert isinstance(cipher, cls)
    assert cipher.decrypt(cls(key).encrypt(PLAINTEXT)) == PLAINTEXT


def test_cipher_from_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"unknown cipher algorithm 'des'.*aes-256-gcm, sm4-cbc"):
        cipher_from_config("des", b64(AES_KEY))
    with pytest.raises(ValueError, match="aes-256-gcm needs a 32-byte key, the configured key is 16 bytes"):
        cipher_from_config("aes-256-gcm", b64(SM4_KEY))
    with pytest.raises(ValueError, match="sm4-cbc needs a 16-byte key"):
        cipher_from_config("sm4-cbc", b64(AES_KEY))
    with pytest.raises(ValueError, match="not valid base64") as info:
        cipher_from_config("sm4-cbc", "not a key!")
    assert "not a key" not in str(info.value)  # never echo key material


def test_cipher_from_env() -> None:
    env = {"CODEC_CIPHER_ALGORITHM": "sm4-cbc", "CODEC_CIPHER_KEY": b64(SM4_KEY)}
    assert cipher_from_env(env).algorithm == "sm4-cbc"
    with pytest.raises(ValueError, match="CODEC_CIPHER_KEY"):
        cipher_from_env({"CODEC_CIPHER_ALGORITHM": "sm4-cbc"})
