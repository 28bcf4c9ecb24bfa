"""Personal data at rest: phone numbers are encrypted (AES-256-GCM) and shown masked (PIPL).

The keys form a keyring from the configuration: `GATEWAY_DATA_KEYS` ("id:base64,id:base64", the first is
the current key) and/or the older single `GATEWAY_DATA_KEY` (key id `k0`). A ciphertext names its key:
`v1:<key id>:<base64(nonce + ciphertext)>`, so encryption always uses the current key and decryption any
key of the ring. Tokens written before key ids existed (plain base64) are read with `k0` (the key of
`GATEWAY_DATA_KEY`, or the entry named `k0` in `GATEWAY_DATA_KEYS`). `privacy_cli rotate` moves every
stored phone number to the current key (docs/operations.md).

The same keys give keyed hashes (HMAC-SHA256 under a per-purpose subkey): the anonymised erasure records
name an application only by such a hash. The keyring itself is `shared/keyring.py` (matching uses it too).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from shared.keyring import FieldCipher, KeyConfigError, UndecryptableToken, parse_keyring
from shared.logging import get_logger, mask_phone

if TYPE_CHECKING:
    from services.gateway.config import GatewaySettings

log = get_logger(__name__)

DEVELOPMENT_KEY = base64.b64encode(b"development-only-data-key-32byte").decode()


def cipher_from_settings(settings: GatewaySettings) -> FieldCipher:
    """The keyring of the configuration. Without a key the gateway refuses to start, unless the environment
    is explicitly `development` or `test` (ENVIRONMENT set, not the default): then the public development
    key, which protects nothing, is used with a warning. A deployment that forgot both never runs on it."""
    data_keys = settings.gateway_data_keys.get_secret_value()
    data_key = settings.gateway_data_key.get_secret_value()
    if not (data_keys.strip() or data_key.strip()):
        explicit = "environment" in settings.model_fields_set
        if settings.environment == "production" or not explicit:
            raise KeyConfigError(
                "GATEWAY_DATA_KEYS (or GATEWAY_DATA_KEY) is required; only ENVIRONMENT=development or test "
                "may run without one, on the public development key"
            )
        log.warning("GATEWAY_DATA_KEY not set: using a development key; phone numbers are not protected")
        data_key = DEVELOPMENT_KEY
    return FieldCipher.from_config(data_keys, data_key)


__all__ = [
    "FieldCipher",
    "KeyConfigError",
    "UndecryptableToken",
    "cipher_from_settings",
    "mask_phone",
    "parse_keyring",
]
