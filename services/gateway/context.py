"""Typed keys for what the gateway's request handlers find on the application and the request."""

from __future__ import annotations

from aiohttp import web

from services.gateway.config import GatewaySettings
from shared.blobs import BlobStore
from shared.db import Database
from shared.outbox import OutboxRelay

SETTINGS = web.AppKey("settings", GatewaySettings)
DATABASE = web.AppKey("database", Database)
BLOBS = web.AppKey("blobs", BlobStore)
RELAY = web.AppKey("relay", OutboxRelay)
REQUEST_ID = web.RequestKey("request_id", str)
