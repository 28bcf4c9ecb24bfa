"""Gateway settings: HTTP limits, sessions, the student rules' defaults, payments."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.gateway.http.addresses import TrustedProxies
from shared.config import Settings


class GatewaySettings(Settings):
    service_name: str = "gateway"
    http_port: int = 8080
    # A saved code image or a phone photo; bodies above this get 413 before they are read.
    gateway_max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    gateway_max_json_bytes: int = Field(default=64 * 1024, ge=1024)
    # Checked from the image header before anything decodes it (decompression bombs).
    gateway_max_image_pixels: int = Field(default=40_000_000, ge=10_000)
    # A QR code holds at most 2,953 bytes: longer "scanner text" did not come from a QR scan.
    gateway_max_qr_text_chars: int = Field(default=3000, ge=64)
    # Seed step 10, local (album) uploads: 480-1350 × 640-1800 px, 50 KB-1 MB, JPEG.
    album_min_width: int = 480
    album_max_width: int = 1350
    album_min_height: int = 640
    album_max_height: int = 1800
    album_min_bytes: int = 50 * 1024
    album_max_bytes: int = 1024 * 1024
    # Sessions of the gateway's own (not WeChat's session_key, which never leaves the server).
    gateway_session_ttl_hours: float = Field(default=72, gt=0)
    # Encrypts phone numbers at rest (base64 of 32 bytes); required in production.
    gateway_data_key: SecretStr = SecretStr("")
    # The keyring for rotation: "id:base64,id:base64", the first encrypts; every one decrypts
    # (services/gateway/privacy.py, docs/operations.md). GATEWAY_DATA_KEY joins it as key id k0.
    gateway_data_keys: SecretStr = SecretStr("")
    # Retention (services/gateway/retention.py): photos and derived data of a delivered application are
    # purged this long after `delivery.exported_at`; the gateway checks every interval (0: never, use the CLI).
    retention_days_after_delivery: float = Field(default=90, gt=0)
    # An application never delivered (the student stopped before approval) keeps its photos this long
    # after its last change, then they are purged the same way (0: kept until erased on request).
    retention_days_if_undelivered: float = Field(default=365, ge=0)
    retention_interval_s: float = Field(default=3600, ge=0)
    retention_batch_size: int = Field(default=100, ge=1, le=10_000)
    # The proxies (comma-separated CIDRs) whose X-Forwarded-For is believed: the ingress controller's pods.
    # Empty: none, the TCP peer is the client (services/gateway/http/addresses.py, deploy/README.md).
    gateway_trusted_proxies: str = ""
    gateway_login_per_minute: float = Field(default=20, gt=0)
    gateway_uploads_per_minute: float = Field(default=10, gt=0)
    gateway_upload_burst: int = Field(default=10, ge=1)
    # Payments: an unpaid order expires; the reconciliation task asks WeChat Pay about orders whose
    # notification never came.
    gateway_order_expiry_minutes: int = Field(default=30, ge=5, le=120)
    gateway_reconcile_interval_s: float = Field(default=60, gt=0)
    # A long poll (`?wait=`) is woken by this process's own writes; it also reads the database again
    # this often, for changes another replica wrote (services/gateway/waiters.py).
    gateway_long_poll_recheck_s: float = Field(default=5.0, gt=0, le=60)
    gateway_reconcile_after_s: float = Field(default=120, ge=0)
    # How often the applications-by-state gauge (the funnel on the dashboard) is recounted.
    gateway_funnel_interval_s: float = Field(default=30, gt=0)
    # Operator console (/console): session cookie lifetime, login throttling, review leases, imports.
    console_session_ttl_minutes: float = Field(default=480, gt=0)
    # Each gateway process keeps a console session and its operator this long after reading them (0: reads
    # on every request). Its own logouts and operator changes take effect at once; another replica's (an
    # operator disabled there, or in the database) within this many seconds (docs/console.md).
    console_auth_cache_s: float = Field(default=5.0, ge=0, le=30)
    # Secure cookies need HTTPS (the ingress terminates TLS); only a plain-HTTP local run turns it off.
    console_cookie_secure: bool = True
    # Per email and per client address: a burst of attempts, then this many a minute.
    console_login_burst: int = Field(default=5, ge=1)
    console_login_per_minute: float = Field(default=2, gt=0)
    console_review_lease_s: float = Field(default=300, ge=5)
    # A roster file or an admission-photo zip; must fit the HTTP body limit (gateway_max_upload_bytes).
    console_max_import_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Console dashboard (services/gateway/console/dashboard.py): queue figures from RabbitMQ's management
    # HTTP API; empty means http://<AMQP host>:15672 with the AMQP URL's credentials (a URL without
    # credentials takes the AMQP URL's too). Figures are cached this long, shared by every operator.
    rabbitmq_management_url: str = ""
    rabbitmq_management_timeout_s: float = Field(default=2.0, gt=0, le=30)
    console_dashboard_cache_s: float = Field(default=2.0, ge=0, le=60)
    # Notify failures on the dashboard: those of the last this many hours (0: all).
    console_dashboard_notify_window_h: float = Field(default=168, ge=0)

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        TrustedProxies.parse(value)  # a typo stops the start with the entry named
        return value
