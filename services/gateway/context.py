"""Typed keys for what the gateway's request handlers find on the application and the request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.gateway.config import GatewaySettings
from services.gateway.http.limits import RateLimiter
from services.gateway.privacy import FieldCipher
from services.gateway.schools import Schools
from services.gateway.store import Applications, Sessions, Users
from services.gateway.waiters import Waiters
from shared.blobs import BlobStore
from shared.db import Database
from shared.outbox import OutboxRelay
from shared.wechat.miniprogram import WeChatClient
from shared.wechat.pay import WeChatPayClient


@dataclass(frozen=True)
class Limiters:
    login: RateLimiter
    upload: RateLimiter


SETTINGS = web.AppKey("settings", GatewaySettings)
DATABASE = web.AppKey("database", Database)
BLOBS = web.AppKey("blobs", BlobStore)
RELAY = web.AppKey("relay", OutboxRelay)
APPLICATIONS = web.AppKey("applications", Applications)
WAITERS = web.AppKey("waiters", Waiters)
USERS = web.AppKey("users", Users)
SESSIONS = web.AppKey("sessions", Sessions)
SCHOOLS = web.AppKey("schools", Schools)
WECHAT = web.AppKey("wechat", WeChatClient)
PAY = web.AppKey("pay", WeChatPayClient)
LIMITERS = web.AppKey("limiters", Limiters)
FIELD_CIPHER = web.AppKey("field_cipher", FieldCipher)
REQUEST_ID = web.RequestKey("request_id", str)
