"""Development key sets and the settings the clients read from the environment."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.wechat.config import WeChatSettings
from shared.wechat.crypto import load_private_key, load_public_key, rsa_sign, rsa_verify
from shared.wechat.keys import (
    MERCHANT_PRIVATE_KEY_FILE,
    PLATFORM_PUBLIC_KEY_FILE,
    client_env,
    load_or_create_keyset,
    read_keyset,
    sandbox_env,
    write_keyset,
)
from tests.support.wechat import shared_keyset


def test_generated_keyset_looks_like_real_credentials() -> None:
    ks = shared_keyset()
    assert re.fullmatch(r"wx[0-9a-f]{16}", ks.appid)
    assert re.fullmatch(r"19\d{8}", ks.mchid)
    assert re.fullmatch(r"[0-9A-F]{40}", ks.merchant_serial)
    assert re.fullmatch(r"PUB_KEY_ID_\d+", ks.platform_public_key_id)
    assert len(ks.apiv3_key.encode()) == 32
    # Each private key belongs to its public key, and the two pairs differ.
    merchant = rsa_sign(load_private_key(ks.merchant_private_key), "m")
    assert rsa_verify(load_public_key(ks.merchant_public_key), "m", merchant)
    assert not rsa_verify(load_public_key(ks.platform_public_key), "m", merchant)
    assert ks.secret not in repr(ks)
    assert ks.apiv3_key not in repr(ks)


@pytest.mark.parametrize("name", ["keys", "keys.json"])
def shared_keyset_round_trips_through_disk_owner_only(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_keyset(shared_keyset(), path)
    assert read_keyset(path) == shared_keyset()
    files = [path] if path.is_file() else list(path.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_load_or_create_keeps_the_keys_across_restarts(tmp_path: Path) -> None:
    first = load_or_create_keyset(tmp_path / "wechat")
    second = load_or_create_keyset(tmp_path / "wechat")
    assert first == second
    assert (tmp_path / "wechat" / MERCHANT_PRIVATE_KEY_FILE).read_text() == first.merchant_private_key


def test_client_env_configures_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    ks = shared_keyset()
    env = client_env(ks, api_base="http://127.0.0.1:8090", notify_url="http://127.0.0.1:8080/pay/notify")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = WeChatSettings()
    assert settings.wechatpay_api_base == "http://127.0.0.1:8090"
    assert settings.wechatpay_private_key.get_secret_value() == ks.merchant_private_key
    assert settings.wechatpay_public_key_id == ks.platform_public_key_id
    assert settings.miniprogram_configured and settings.pay_configured


def test_key_files_are_read_from_the_file_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ks = shared_keyset()
    write_keyset(ks, tmp_path / "wechat")
    env = client_env(ks, api_base="http://sandbox", notify_url="https://x/n", key_dir=tmp_path / "wechat")
    assert "WECHATPAY_PRIVATE_KEY" not in env
    assert env["WECHATPAY_PUBLIC_KEY_FILE"].endswith(PLATFORM_PUBLIC_KEY_FILE)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = WeChatSettings()
    assert settings.wechatpay_private_key.get_secret_value() == ks.merchant_private_key
    assert settings.wechatpay_public_key == ks.platform_public_key


def test_a_pem_pasted_on_one_line_is_restored() -> None:
    one_line = shared_keyset().platform_public_key.strip().replace("\n", "\\n")
    settings = WeChatSettings(wechatpay_public_key=one_line)
    assert settings.wechatpay_public_key == shared_keyset().platform_public_key
    load_public_key(settings.wechatpay_public_key)


def test_defaults_point_at_wechat_and_say_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(client_env(shared_keyset(), api_base="x")):
        monkeypatch.delenv(name, raising=False)
    settings = WeChatSettings()
    assert settings.wechat_api_base == "https://api.weixin.qq.com"
    assert settings.wechatpay_api_base == "https://api.mch.weixin.qq.com"
    assert settings.wechat_timeout_s == 10 and settings.wechatpay_notify_max_age_s == 300
    assert not settings.miniprogram_configured and not settings.pay_configured


def test_an_apiv3_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        WeChatSettings(wechatpay_apiv3_key="too-short")


def test_sandbox_env_names_its_key_set(tmp_path: Path) -> None:
    assert sandbox_env(tmp_path, port=9000) == {"SANDBOX_KEYS": str(tmp_path), "SANDBOX_PORT": "9000"}
