"""WeChat clients: mini-program API (login, phone number, subscribe messages) and WeChat Pay API v3.

Base URLs come from configuration, so the same code talks to WeChat or to the project's sandbox
(`sandbox/wechat`). See docs/wechat.md.
"""

from shared.wechat.config import WeChatSettings
from shared.wechat.errors import NotificationRejected, WeChatError, WeChatPayError
from shared.wechat.miniprogram import AccessTokenCache, PhoneInfo, SessionInfo, WeChatClient
from shared.wechat.pay import NotificationVerifier, WeChatPayClient

__all__ = [
    "AccessTokenCache",
    "NotificationRejected",
    "NotificationVerifier",
    "PhoneInfo",
    "SessionInfo",
    "WeChatClient",
    "WeChatError",
    "WeChatPayClient",
    "WeChatPayError",
    "WeChatSettings",
]
