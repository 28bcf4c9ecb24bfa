"""WeChat and WeChat Pay settings from the environment; empty secrets mean "not configured"."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# PEM-valued settings that may also come from a file (`<NAME>_FILE`), as Kubernetes mounts Secrets.
_FILE_BACKED = ("wechatpay_private_key", "wechatpay_public_key")


def _normalise_pem(value: str) -> str:
    # A PEM pasted into a one-line variable often carries literal "\n": turn them back into newlines.
    value = value.strip()
    if "\n" not in value and "\\n" in value:
        value = value.replace("\\n", "\n")
    return value + "\n" if value else value


class WeChatSettings(BaseSettings):
    """Credentials and endpoints of the mini-program and of WeChat Pay; the gateway decides what it needs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_appid: str = ""
    wechat_secret: SecretStr = SecretStr("")
    # `stable_token` shares one token among every caller of the appid; `token` (the legacy API)
    # invalidates the previous token on each call, so it is safe only with a single token holder.
    wechat_token_api: Literal["stable_token", "token"] = "stable_token"  # noqa: S105
    wechat_timeout_s: float = Field(default=10.0, gt=0)

    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    wechatpay_mchid: str = ""
    wechatpay_merchant_serial: str = ""
    wechatpay_private_key: SecretStr = SecretStr("")
    wechatpay_private_key_file: Path | None = None
    wechatpay_public_key: str = ""
    wechatpay_public_key_file: Path | None = None
    wechatpay_public_key_id: str = ""
    wechatpay_apiv3_key: SecretStr = SecretStr("")
    wechatpay_notify_url: str = ""
    wechatpay_refund_notify_url: str = ""
    # WeChat Pay's own advice: refuse notifications and responses more than 5 minutes off.
    wechatpay_notify_max_age_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _read_key_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in _FILE_BACKED:
            inline = data.get(name)
            inline_text = inline.get_secret_value() if isinstance(inline, SecretStr) else inline
            path = data.get(f"{name}_file")
            if not inline_text and path:
                data[name] = Path(path).read_text(encoding="utf-8")
        for name in _FILE_BACKED:
            value = data.get(name)
            if isinstance(value, str):
                data[name] = _normalise_pem(value)
        return data

    @model_validator(mode="after")
    def _check_apiv3_key(self) -> WeChatSettings:
        key = self.wechatpay_apiv3_key.get_secret_value()
        if key and len(key.encode()) != 32:
            raise ValueError("WECHATPAY_APIV3_KEY must be exactly 32 bytes (AES-256)")
        return self

    @property
    def miniprogram_configured(self) -> bool:
        """True when login, phone numbers and subscribe messages can be used."""
        return bool(self.wechat_appid and self.wechat_secret.get_secret_value())

    @property
    def pay_configured(self) -> bool:
        """True when WeChat Pay orders can be placed and notifications verified."""
        return bool(
            self.wechat_appid
            and self.wechatpay_mchid
            and self.wechatpay_merchant_serial
            and self.wechatpay_private_key.get_secret_value()
            and self.wechatpay_public_key
            and self.wechatpay_public_key_id
            and self.wechatpay_apiv3_key.get_secret_value()
            and self.wechatpay_notify_url
        )
