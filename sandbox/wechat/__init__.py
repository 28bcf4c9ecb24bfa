"""The WeChat sandbox: mini-program login, phone numbers, subscribe messages and WeChat Pay API v3.

One aiohttp server answers what api.weixin.qq.com and api.mch.weixin.qq.com would, with their field
names, error codes, RSA signatures and AES-GCM notifications, plus a control API under `/sandbox/`.
State is in memory: a restart starts fresh. See docs/wechat.md.
"""

from sandbox.wechat.app import SandboxServer, build_app, start_sandbox
from sandbox.wechat.config import SandboxConfig

__all__ = ["SandboxConfig", "SandboxServer", "build_app", "start_sandbox"]
