"""Configuration from the environment (pydantic-settings); every service subclasses `Settings`."""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings every process shares; names are the upper-case environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "gradphoto"
    log_level: str = "INFO"
    # None means: JSON in production, human-readable elsewhere.
    log_format: Literal["json", "console"] | None = None

    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = "gradphoto"
    mongo_timeout_ms: int = Field(default=5000, ge=100)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    bus_exchange: str = "events"
    # Small prefetch: the workers are CPU-bound, a large prefetch starves sibling replicas.
    bus_prefetch: int = Field(default=4, ge=1, le=1000)
    # Attempts (first delivery included) before a message is parked in the dead queue.
    bus_max_attempts: int = Field(default=5, ge=1, le=100)
    bus_retry_delay_ms: int = Field(default=5000, ge=0)
    bus_publish_timeout_s: float = Field(default=10.0, gt=0)
    # How soon a lost broker connection is retried; the robust connection restores the topology.
    bus_reconnect_interval_s: float = Field(default=2.0, gt=0)
    # A claim on an event lasts this long and is renewed every BUS_CLAIM_HEARTBEAT_S while its handler
    # runs, so it need not outlast the slowest handler. After a crash the redelivered event waits (in the
    # retry queue) at most this long before another worker takes over.
    bus_claim_lease_s: float = Field(default=10.0, gt=0)
    bus_claim_heartbeat_s: float = Field(default=3.0, gt=0)
    # Time given to in-flight messages on SIGTERM before the connection is closed.
    drain_timeout_s: float = Field(default=30.0, ge=0)

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Where /readyz and /metrics are served. Unset: on the HTTP port (workers, whose port nothing exposes;
    # local runs). The gateway sets it in production, so the port the ingress exposes serves neither.
    ops_port: int | None = Field(default=None, ge=0, le=65535)

    # The relay publishes what this process's writers hand it at once; this sweep finds the rest (events
    # staged by another process or a CLI, or left by a crash): once at start, then every interval.
    outbox_sweep_interval_s: float = Field(default=5.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)

    @property
    def claim_heartbeat_s(self) -> float:
        """The heartbeat actually used: at least three per lease, so one slow write loses no live claim."""
        return min(self.bus_claim_heartbeat_s, self.bus_claim_lease_s / 3)

    @property
    def json_logs(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return self.environment == "production"


S = TypeVar("S", bound=Settings)


def load_settings(cls: type[S]) -> S:
    """Read settings from the environment; a missing or bad variable stops the process with its name."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(err['loc'][0]).upper() if err['loc'] else '?'}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"configuration error: {problems}")
