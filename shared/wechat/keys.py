"""Development key sets: every credential WeChat and WeChat Pay would issue, made locally.

`make run` and the tests point the clients at the sandbox (`sandbox/wechat`) with one of these. A key
set is either a directory (WeChat's own file names: `apiclient_key.pem` is the merchant API private
key, `pub_key.pem` the WeChat Pay public key; the ids in `wechat.json`) or a single `.json` file.
Never use one in production: real credentials come from the WeChat and WeChat Pay consoles.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MERCHANT_PRIVATE_KEY_FILE = "apiclient_key.pem"
MERCHANT_PUBLIC_KEY_FILE = "apiclient_pub.pem"
PLATFORM_PUBLIC_KEY_FILE = "pub_key.pem"
PLATFORM_PRIVATE_KEY_FILE = "platform_key.pem"  # only the sandbox holds this one
IDS_FILE = "wechat.json"


@dataclass(frozen=True)
class WeChatKeySet:
    """Both sides of every WeChat credential: what the merchant holds and what WeChat holds."""

    appid: str
    secret: str = field(repr=False)
    mchid: str
    merchant_serial: str
    merchant_private_key: str = field(repr=False)
    merchant_public_key: str
    platform_private_key: str = field(repr=False)
    platform_public_key: str
    platform_public_key_id: str
    apiv3_key: str = field(repr=False)


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def generate_keyset() -> WeChatKeySet:
    """A fresh key set shaped like the real thing (appid `wx...`, 10-digit mchid, `PUB_KEY_ID_...`)."""
    merchant_private, merchant_public = _rsa_pair()
    platform_private, platform_public = _rsa_pair()
    mchid = "19" + _digits(8)
    alphabet = string.ascii_letters + string.digits
    return WeChatKeySet(
        appid="wx" + secrets.token_hex(8),
        secret=secrets.token_hex(16),
        mchid=mchid,
        merchant_serial=secrets.token_hex(20).upper(),
        merchant_private_key=merchant_private,
        merchant_public_key=merchant_public,
        platform_private_key=platform_private,
        platform_public_key=platform_public,
        platform_public_key_id=f"PUB_KEY_ID_01{mchid}{_digits(18)}",
        apiv3_key="".join(secrets.choice(alphabet) for _ in range(32)),
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def write_keyset(keyset: WeChatKeySet, path: Path) -> None:
    """Write as a directory of files, or as one JSON file when `path` ends in `.json`; owner-only."""
    if path.suffix == ".json":
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(asdict(keyset), indent=2))
        return
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path / MERCHANT_PRIVATE_KEY_FILE, keyset.merchant_private_key)
    _write_private(path / MERCHANT_PUBLIC_KEY_FILE, keyset.merchant_public_key)
    _write_private(path / PLATFORM_PRIVATE_KEY_FILE, keyset.platform_private_key)
    _write_private(path / PLATFORM_PUBLIC_KEY_FILE, keyset.platform_public_key)
    ids = {
        "appid": keyset.appid,
        "secret": keyset.secret,
        "mchid": keyset.mchid,
        "merchant_serial": keyset.merchant_serial,
        "platform_public_key_id": keyset.platform_public_key_id,
        "apiv3_key": keyset.apiv3_key,
    }
    _write_private(path / IDS_FILE, json.dumps(ids, indent=2))


def read_keyset(path: Path) -> WeChatKeySet:
    if path.is_file():
        return WeChatKeySet(**json.loads(path.read_text(encoding="utf-8")))
    ids = json.loads((path / IDS_FILE).read_text(encoding="utf-8"))
    return WeChatKeySet(
        **ids,
        merchant_private_key=(path / MERCHANT_PRIVATE_KEY_FILE).read_text(encoding="utf-8"),
        merchant_public_key=(path / MERCHANT_PUBLIC_KEY_FILE).read_text(encoding="utf-8"),
        platform_private_key=(path / PLATFORM_PRIVATE_KEY_FILE).read_text(encoding="utf-8"),
        platform_public_key=(path / PLATFORM_PUBLIC_KEY_FILE).read_text(encoding="utf-8"),
    )


def load_or_create_keyset(path: Path) -> WeChatKeySet:
    """The key set at `path`, made there first if there is none (so restarts keep the same keys)."""
    exists = path.is_file() if path.suffix == ".json" else (path / IDS_FILE).is_file()
    if not exists:
        write_keyset(generate_keyset(), path)
    return read_keyset(path)


def client_env(
    keyset: WeChatKeySet,
    *,
    api_base: str,
    pay_api_base: str | None = None,
    notify_url: str = "",
    refund_notify_url: str = "",
    key_dir: Path | None = None,
) -> dict[str, str]:
    """The `WECHAT_*` / `WECHATPAY_*` variables for a service (the gateway, the notify worker).

    With `key_dir` (a key set written as a directory) the PEMs are passed as `*_FILE` paths instead of
    inline, so they do not show up in a process listing's environment.
    """
    env = {
        "WECHAT_API_BASE": api_base,
        "WECHAT_APPID": keyset.appid,
        "WECHAT_SECRET": keyset.secret,
        "WECHATPAY_API_BASE": pay_api_base or api_base,
        "WECHATPAY_MCHID": keyset.mchid,
        "WECHATPAY_MERCHANT_SERIAL": keyset.merchant_serial,
        "WECHATPAY_PUBLIC_KEY_ID": keyset.platform_public_key_id,
        "WECHATPAY_APIV3_KEY": keyset.apiv3_key,
        "WECHATPAY_NOTIFY_URL": notify_url,
        "WECHATPAY_REFUND_NOTIFY_URL": refund_notify_url,
    }
    if key_dir is not None:
        env["WECHATPAY_PRIVATE_KEY_FILE"] = str(key_dir / MERCHANT_PRIVATE_KEY_FILE)
        env["WECHATPAY_PUBLIC_KEY_FILE"] = str(key_dir / PLATFORM_PUBLIC_KEY_FILE)
    else:
        env["WECHATPAY_PRIVATE_KEY"] = keyset.merchant_private_key
        env["WECHATPAY_PUBLIC_KEY"] = keyset.platform_public_key
    return env


def sandbox_env(path: Path, *, port: int | None = None, host: str | None = None) -> dict[str, str]:
    """The variables `python -m sandbox.wechat` reads: where its key set is, and where to listen."""
    env = {"SANDBOX_KEYS": str(path)}
    if port is not None:
        env["SANDBOX_PORT"] = str(port)
    if host is not None:
        env["SANDBOX_HOST"] = host
    return env
