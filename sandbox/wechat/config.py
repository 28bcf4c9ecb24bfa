"""Sandbox configuration: the key set it plays WeChat with, and the defaults of its knobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.codec.cipher import CodeCipher
from shared.wechat.keys import WeChatKeySet

# WeChat Pay's own retry schedule starts 15 s, 15 s, 30 s, 3 min, 10 min, 20 min, 30 min, ...
REAL_NOTIFY_RETRY_DELAYS_S = (15.0, 15.0, 30.0, 180.0, 600.0, 1200.0, 1800.0)


@dataclass(frozen=True)
class SandboxConfig:
    """What a sandbox instance is started with; tests build one directly around a generated key set."""

    keyset: WeChatKeySet
    token_ttl_s: float = 7200.0
    # Delays between notification attempts after a failed one; its length is the number of retries.
    notify_retry_delays_s: tuple[float, ...] = REAL_NOTIFY_RETRY_DELAYS_S
    notify_timeout_s: float = 5.0
    # How far a merchant request's timestamp may be from the sandbox clock.
    auth_max_skew_s: float = 300.0
    # wx.login and getPhoneNumber codes are valid 5 minutes, once.
    code_ttl_s: float = 300.0
    # The CHSI stand-in (sandbox/wechat/chsi.py): the development key it encrypts collection codes with;
    # without one, POST /sandbox/chsi/codes answers 409.
    chsi_cipher: CodeCipher | None = None


class SandboxSettings(BaseSettings):
    """`python -m sandbox.wechat` reads these; the key set is made under SANDBOX_KEYS when missing."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=0, le=65535)
    sandbox_keys: Path = Path("var/wechat")
    sandbox_token_ttl_s: float = Field(default=7200.0, gt=0)
    # Comma-separated seconds, e.g. "0.1,0.2,0.5".
    sandbox_notify_retry_delays_s: str = ",".join(f"{d:g}" for d in REAL_NOTIFY_RETRY_DELAYS_S)
    sandbox_notify_timeout_s: float = Field(default=5.0, gt=0)
    # The CHSI stand-in uses the codec's own development key (make run passes it to every child).
    codec_cipher_key: str | None = None
    codec_cipher_algorithm: str = "aes-256-gcm"
    log_level: str = "INFO"
    log_format: str | None = None

    def retry_delays(self) -> tuple[float, ...]:
        parts = [p.strip() for p in self.sandbox_notify_retry_delays_s.split(",") if p.strip()]
        return tuple(float(p) for p in parts)
