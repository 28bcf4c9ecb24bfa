"""The data keyring: versioned phone tokens, legacy tokens, rotation, keyed hashes, configuration errors."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from services.gateway.config import GatewaySettings
from services.gateway.privacy import (
    FieldCipher,
    KeyConfigError,
    UndecryptableToken,
    cipher_from_settings,
    parse_keyring,
)

OLD = bytes(range(32))
NEW = bytes(range(100, 132))
OLD_B64 = base64.b64encode(OLD).decode()
NEW_B64 = base64.b64encode(NEW).decode()
PHONE = "13812345678"
CONTEXT = "phone:o-student-1"


def legacy_token(key: bytes, value: str, context: str) -> str:
    """A token as the gateway wrote it before key ids existed: base64(nonce + ciphertext)."""
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, value.encode(), context.encode())).decode()


def test_single_key_configuration_still_works_and_tags_its_tokens() -> None:
    cipher = FieldCipher(OLD_B64)
    assert cipher.current == "k0" and cipher.key_ids == ["k0"]
    token = cipher.encrypt(PHONE, context=CONTEXT)
    assert token.startswith("v1:k0:") and PHONE not in token
    assert cipher.decrypt(token, context=CONTEXT) == PHONE
    assert cipher.decrypt(legacy_token(OLD, PHONE, CONTEXT), context=CONTEXT) == PHONE
    assert FieldCipher.key_id_of(legacy_token(OLD, PHONE, CONTEXT)) == "k0"


def test_ring_encrypts_with_the_first_key_and_decrypts_with_any() -> None:
    old_only = FieldCipher.from_config(data_key=OLD_B64)
    old_token = old_only.encrypt(PHONE, context=CONTEXT)
    legacy = legacy_token(OLD, PHONE, CONTEXT)

    ring = FieldCipher.from_config(f"k1:{NEW_B64},k0:{OLD_B64}")
    assert ring.current == "k1" and ring.key_ids == ["k1", "k0"]
    new_token = ring.encrypt(PHONE, context=CONTEXT)
    assert new_token.startswith("v1:k1:")
    for token in (old_token, legacy, new_token):
        assert ring.decrypt(token, context=CONTEXT) == PHONE
    assert ring.needs_rotation(old_token) and ring.needs_rotation(legacy)
    assert not ring.needs_rotation(new_token)
    rotated = ring.rotate(old_token, context=CONTEXT)
    assert rotated.startswith("v1:k1:") and ring.decrypt(rotated, context=CONTEXT) == PHONE
    assert ring.rotate(new_token, context=CONTEXT) == new_token

    # GATEWAY_DATA_KEY next to GATEWAY_DATA_KEYS joins the ring as k0 (the first entry stays current).
    both = FieldCipher.from_config(f"k1:{NEW_B64}", OLD_B64)
    assert both.current == "k1" and both.decrypt(legacy, context=CONTEXT) == PHONE


def test_unknown_key_id_wrong_key_damage_and_wrong_context_are_clear_errors() -> None:
    ring = FieldCipher.from_config(f"k1:{NEW_B64}")
    old_token = FieldCipher(OLD_B64).encrypt(PHONE, context=CONTEXT)
    with pytest.raises(UndecryptableToken, match=r"key id 'k0'.*not configured") as info:
        ring.decrypt(old_token, context=CONTEXT)
    assert PHONE not in str(info.value)
    # Same id, different key material: the tag does not verify.
    impostor = FieldCipher.from_config(f"k0:{NEW_B64}")
    with pytest.raises(UndecryptableToken, match="wrong key or damaged"):
        impostor.decrypt(old_token, context=CONTEXT)
    with pytest.raises(UndecryptableToken, match="wrong key or damaged"):
        impostor.decrypt(legacy_token(OLD, PHONE, CONTEXT), context=CONTEXT)
    good = ring.encrypt(PHONE, context=CONTEXT)
    for broken in (good[:-4] + "AAAA", "v1:k1:not base64!", "v1:k1", good.replace("v1:k1:", "v1:k1:%%")):
        with pytest.raises(UndecryptableToken):
            ring.decrypt(broken, context=CONTEXT)
    with pytest.raises(UndecryptableToken):
        ring.decrypt(good, context="phone:someone-else")  # bound to its account


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ("", "", "no data key"),
        ("k1", "", "expected id:base64"),
        (f"bad id!:{NEW_B64}", "", "expected id:base64"),
        (f"{'k' * 17}:{NEW_B64}", "", "expected id:base64"),
        ("k1:%%%", "", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "", "32 bytes"),
        (f"k1:{NEW_B64},k1:{OLD_B64}", "", "appears twice"),
        (f"k0:{NEW_B64}", OLD_B64, "differs"),
        ("", "not-base64", "not base64"),
    ],
)
def test_malformed_key_configuration_is_refused_without_echoing_the_key(
    keys: str, key: str, message: str
) -> None:
    with pytest.raises(KeyConfigError, match=message) as info:
        parse_keyring(keys, key)
    assert NEW_B64 not in str(info.value) and OLD_B64 not in str(info.value)


def test_settings_production_needs_a_key_development_falls_back() -> None:
    with pytest.raises(KeyConfigError, match="is required"):
        cipher_from_settings(GatewaySettings(environment="production"))
    assert cipher_from_settings(GatewaySettings(environment="development")).current == "k0"
    configured = cipher_from_settings(
        GatewaySettings(environment="production", gateway_data_keys=SecretStr(f"k2:{NEW_B64},k0:{OLD_B64}"))
    )
    assert configured.current == "k2" and configured.key_ids == ["k2", "k0"]


def test_keyed_hashes_are_stable_per_key_and_found_after_rotation() -> None:
    before = FieldCipher.from_config(data_key=OLD_B64)
    after = FieldCipher.from_config(f"k1:{NEW_B64},k0:{OLD_B64}")
    digest = before.keyed_hash("application-1", purpose="erasure")
    assert digest.startswith("k0:") and len(digest.split(":")[1]) == 64
    assert before.keyed_hash("application-1", purpose="erasure") == digest
    assert before.keyed_hash("application-2", purpose="erasure") != digest
    assert before.keyed_hash("application-1", purpose="other") != digest
    assert after.keyed_hash("application-1", purpose="erasure") != digest
    assert digest in after.keyed_hashes("application-1", purpose="erasure")
    assert "application-1" not in digest


def test_without_a_data_key_the_gateway_falls_back_to_the_public_development_key_unless_told_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13 item 10: ENVIRONMENT left at its default (development) gave the public key with a warning."""
    for name in ("ENVIRONMENT", "GATEWAY_DATA_KEY", "GATEWAY_DATA_KEYS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(KeyConfigError, match="ENVIRONMENT=development or test"):
        cipher_from_settings(GatewaySettings())
    monkeypatch.setenv("ENVIRONMENT", "development")  # explicitly configured: the development key
    assert cipher_from_settings(GatewaySettings()).current == "k0"
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(KeyConfigError, match="is required"):
        cipher_from_settings(GatewaySettings())
