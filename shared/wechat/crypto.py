"""The cryptography WeChat Pay v3 uses: RSA-2048 PKCS#1 v1.5 with SHA-256, and AEAD_AES_256_GCM.

Only primitives live here; which bytes get signed is decided next to each protocol step.
"""

from __future__ import annotations

import base64
import secrets
import string

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_ALPHABET = string.ascii_uppercase + string.digits


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


def rsa_sign(key: rsa.RSAPrivateKey, message: str | bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: the signature of every v3 request, response and paySign."""
    raw = message.encode() if isinstance(message, str) else message
    return base64.b64encode(key.sign(raw, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: str | bytes, signature_b64: str) -> bool:
    raw = message.encode() if isinstance(message, str) else message
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, raw, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def aes_gcm_encrypt(key: str, nonce: str, associated_data: str, plaintext: str) -> str:
    """AEAD_AES_256_GCM with the APIv3 key; the base64 text holds ciphertext and tag, as WeChat sends it."""
    data = AESGCM(key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return base64.b64encode(data).decode()


def aes_gcm_decrypt(key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> str:
    """Raises ValueError when the ciphertext, nonce, associated data or key do not match."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        plain = AESGCM(key.encode()).decrypt(nonce.encode(), data, associated_data.encode())
    except (InvalidTag, ValueError) as exc:
        raise ValueError("AEAD_AES_256_GCM decryption failed") from exc
    return plain.decode()


def nonce_str(length: int = 32) -> str:
    """Random upper-case alphanumerics, as WeChat's SDKs make `nonce_str` and `nonceStr`."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))
