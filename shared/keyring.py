"""A keyring of AES-256-GCM keys for one field at a time: personal and biometric data at rest.

The keys come from one configuration variable ("id:base64,id:base64", the first is the current key) and,
for the gateway, the older single key (key id `k0`). A ciphertext names its key:
`v1:<key id>:<base64(nonce + ciphertext)>`, so encryption always uses the current key and decryption any
key of the ring; the context (e.g. the record's id) is bound as associated data. Used by the gateway for
phone numbers (`services/gateway/privacy.py`, `GATEWAY_DATA_KEYS`) and by matching for admission-photo
descriptors (`MATCHING_DATA_KEYS`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
LEGACY_KEY_ID = "k0"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class KeyConfigError(ValueError):
    """The keys in the configuration are malformed (a message naming the variable, never the key)."""


class UndecryptableToken(ValueError):
    """A stored token cannot be read: unknown key id, wrong key, or damaged."""


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyConfigError(f"{where}: not base64") from exc
    if len(key) != 32:
        raise KeyConfigError(f"{where} must be 32 bytes, base64-encoded")
    return key


def parse_keyring(
    data_keys: str = "", data_key: str = "", *, variable: str = "GATEWAY_DATA_KEYS"
) -> tuple[dict[str, bytes], str]:
    """The keyring and its current key id from `GATEWAY_DATA_KEYS` and `GATEWAY_DATA_KEY`.

    `GATEWAY_DATA_KEYS` wins for the current key (its first entry); `GATEWAY_DATA_KEY` joins the ring as
    `k0` unless an entry already has that id (then both must be the same key).
    """
    keys: dict[str, bytes] = {}
    current = ""
    for n, entry in enumerate(part.strip() for part in data_keys.split(",") if part.strip()):
        key_id, sep, material = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID_RE.match(key_id):
            raise KeyConfigError(
                f"{variable} entry {n + 1}: expected id:base64 (id: 1-16 of A-Z a-z 0-9 _ -)"
            )
        if key_id in keys:
            raise KeyConfigError(f"{variable}: key id {key_id!r} appears twice")
        keys[key_id] = _decode_key(material, f"{variable} key {key_id!r}")
        current = current or key_id
    if data_key.strip():
        legacy = _decode_key(data_key, "GATEWAY_DATA_KEY")
        if LEGACY_KEY_ID in keys and keys[LEGACY_KEY_ID] != legacy:
            raise KeyConfigError(f"GATEWAY_DATA_KEY differs from the {variable} entry k0")
        keys.setdefault(LEGACY_KEY_ID, legacy)
        current = current or LEGACY_KEY_ID
    if not keys:
        raise KeyConfigError(
            f"no data key: set {variable}"
            + (" (or GATEWAY_DATA_KEY)" if variable == "GATEWAY_DATA_KEYS" else "")
        )
    return keys, current


class FieldCipher:
    """Encrypts one field value with the current key of a keyring; decrypts with any key of it."""

    def __init__(
        self,
        key_b64: str | None = None,
        *,
        keys: Mapping[str, bytes] | None = None,
        current: str = "",
        variable: str = "GATEWAY_DATA_KEYS",
    ) -> None:
        if keys is None:
            keys, current = parse_keyring(data_key=key_b64 or "")
        if not keys or current not in keys:
            raise KeyConfigError("the current key id is not in the keyring")
        for key_id, key in keys.items():
            if not _KEY_ID_RE.match(key_id) or len(key) != 32:
                raise KeyConfigError(f"key {key_id!r}: ids are 1-16 of A-Z a-z 0-9 _ -, keys 32 bytes")
        self._keys = dict(keys)
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current
        self._variable = variable

    @classmethod
    def from_config(
        cls, data_keys: str = "", data_key: str = "", *, variable: str = "GATEWAY_DATA_KEYS"
    ) -> FieldCipher:
        keys, current = parse_keyring(data_keys, data_key, variable=variable)
        return cls(keys=keys, current=current, variable=variable)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, value: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aeads[self.current].encrypt(nonce, value.encode(), context.encode())
        return f"{VERSION}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    @staticmethod
    def key_id_of(token: str) -> str:
        """The key id a token names (`k0` for an untagged legacy token)."""
        if token.startswith(f"{VERSION}:"):
            return token.split(":", 2)[1]
        return LEGACY_KEY_ID

    def needs_rotation(self, token: str) -> bool:
        return not token.startswith(f"{VERSION}:{self.current}:")

    def decrypt(self, token: str, *, context: str) -> str:
        if token.startswith(f"{VERSION}:"):
            parts = token.split(":", 2)
            if len(parts) != 3:
                raise UndecryptableToken("malformed token")
            key_id, body = parts[1], parts[2]
        else:
            key_id, body = LEGACY_KEY_ID, token
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UndecryptableToken(
                f"encrypted with key id {key_id!r}, which is not configured "
                f"(add it to {self._variable} until its data has been moved to the current key)"
            )
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise UndecryptableToken(f"does not decrypt with key {key_id!r} (wrong key or damaged)") from exc

    def rotate(self, token: str, *, context: str) -> str:
        """The same value under the current key (the token itself when it already is)."""
        if not self.needs_rotation(token):
            self.decrypt(token, context=context)  # still proves the token is readable
            return token
        return self.encrypt(self.decrypt(token, context=context), context=context)

    def keyed_hash(self, value: str, *, purpose: str, key_id: str | None = None) -> str:
        """`<key id>:<hex HMAC-SHA256>` of `value` under a subkey for `purpose` (not reversible)."""
        key_id = key_id or self.current
        subkey = hmac.new(self._keys[key_id], f"gradphoto:{purpose}".encode(), hashlib.sha256).digest()
        return f"{key_id}:{hmac.new(subkey, value.encode(), hashlib.sha256).hexdigest()}"

    def keyed_hashes(self, value: str, *, purpose: str) -> list[str]:
        """The keyed hash under every key of the ring: finds a record hashed before a rotation."""
        return [self.keyed_hash(value, purpose=purpose, key_id=key_id) for key_id in self._keys]
