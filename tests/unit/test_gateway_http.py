"""The gateway's HTTP plumbing without a server: client addresses through trusted proxies, the console's
login throttle, numeric query parameters, token buckets, the error status table."""

from __future__ import annotations

import pytest

from services.gateway.config import GatewaySettings
from services.gateway.console.auth import LoginThrottle
from services.gateway.http.addresses import TrustedProxies
from services.gateway.http.errors import ApiError
from services.gateway.http.limits import MAX_KEYS, RateLimiter
from services.gateway.http.query import parse_number
from services.gateway.http.statuses import STATUS_OF

PROXIES = TrustedProxies.parse("10.0.0.0/8, 192.168.1.1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),  # a direct caller's header is never believed
        ("10.1.2.3", [], "10.1.2.3"),  # a proxy with no header: the proxy itself
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the invented leftmost entry is skipped
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.2.0.1"], "198.51.100.1"),  # through two trusted hops
        ("10.1.2.3", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several header lines, in order
        ("10.1.2.3", ["10.5.5.5, 10.6.6.6"], "10.5.5.5"),  # every hop trusted: the leftmost
        ("10.1.2.3", ["6.6.6.6, not-an-address"], "10.1.2.3"),  # garbage: the last hop we trust
        ("10.1.2.3", ["198.51.100.1:4711"], "10.1.2.3"),  # with a port: not an address
        ("::ffff:10.1.2.3", ["198.51.100.1"], "198.51.100.1"),  # IPv4-mapped peer
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        ("192.168.1.1", [" 198.51.100.9 ,, "], "198.51.100.9"),
        (None, ["1.2.3.4"], "unknown"),
    ],
)
def test_the_rightmost_untrusted_hop_is_the_client(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert PROXIES.client(peer, forwarded) == client


def test_no_trusted_proxies_means_the_peer_is_the_client() -> None:
    assert TrustedProxies().client("10.1.2.3", ["198.51.100.1"]) == "10.1.2.3"


def test_a_malformed_trusted_proxy_stops_the_start_naming_it() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        TrustedProxies.parse("10.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValueError, match="GATEWAY_TRUSTED_PROXIES"):
        GatewaySettings(environment="test", gateway_trusted_proxies="nonsense")


def test_login_throttle_counts_failures_per_pair_address_and_account() -> None:
    throttle = LoginThrottle(
        pair=RateLimiter(2, burst=5), address=RateLimiter(8, burst=20), account=RateLimiter(8, burst=20)
    )
    now = 1000.0
    for _ in range(5):
        assert throttle.wait("a@x", "1.1.1.1", now) == 0
        throttle.failed("a@x", "1.1.1.1", now)
    assert throttle.wait("a@x", "1.1.1.1", now) > 0  # that pair is throttled, right password or not
    assert throttle.wait("a@x", "2.2.2.2", now) == 0  # the operator elsewhere is not
    assert throttle.wait("b@x", "1.1.1.1", now) == 0  # nor another account from there (yet)
    for n in range(20):
        throttle.failed("a@x", f"3.3.3.{n}", now)
    assert throttle.wait("a@x", "3.3.3.1", now) > 0  # the account is locked for addresses that failed on it
    assert throttle.wait("a@x", "2.2.2.2", now) == 0  # and open for one that has not
    assert throttle.wait("a@x", "2.2.2.2", now + 3600) == 0
    assert throttle.wait("a@x", "1.1.1.1", now + 3600) == 0  # everything grows back


def test_login_throttle_address_limit_across_accounts() -> None:
    throttle = LoginThrottle(
        pair=RateLimiter(2, burst=5), address=RateLimiter(8, burst=20), account=RateLimiter(8, burst=20)
    )
    for n in range(20):
        throttle.failed(f"u{n}@x", "1.1.1.1", 0.0)
    assert throttle.wait("new@x", "1.1.1.1", 0.0) > 0
    assert throttle.wait("new@x", "1.1.1.2", 0.0) == 0


def test_rate_limiter_prunes_idle_buckets_before_forgetting_a_lock() -> None:
    limiter = RateLimiter(60, burst=1)
    limiter.take("locked", 0.0)
    for n in range(MAX_KEYS + 1):
        limiter._buckets[f"idle{n}"] = (1.0, 0.0)  # full buckets: nothing to remember
    limiter.take("another", 0.5)
    assert limiter.wait("locked", 0.5) > 0  # the flood of idle keys did not reset it
    assert len(limiter._buckets) == 2


@pytest.mark.parametrize(
    ("text", "schema", "error"),
    [
        ("nan", {"type": "number"}, "not_a_number"),
        ("inf", {"type": "number"}, "not_a_number"),
        ("-Infinity", {"type": "number"}, "not_a_number"),
        ("1e999", {"type": "number"}, "not_a_number"),
        ("", {"type": "number"}, "not_a_number"),
        ("1.5", {"type": "integer"}, "not_an_integer"),
        ("nan", {"type": "integer"}, "not_an_integer"),
        ("26", {"type": "number", "minimum": 0, "maximum": 25}, "out_of_range"),
        ("-0.1", {"type": "number", "minimum": 0, "maximum": 25}, "out_of_range"),
    ],
)
def test_numeric_query_parameters_must_be_finite_and_in_range(
    text: str, schema: dict[str, object], error: str
) -> None:
    with pytest.raises(ApiError) as refused:
        parse_number("p", text, schema)
    assert refused.value.status == 400 and refused.value.details == {
        "fields": [{"field": "p", "error": error}]
    }


def test_numeric_query_parameters_in_range_pass() -> None:
    assert parse_number("wait", "25", {"type": "number", "minimum": 0, "maximum": 25}) == 25.0
    assert parse_number("limit", " 7 ", {"type": "integer", "minimum": 1}) == 7


def test_every_error_status_is_an_error_status() -> None:
    assert all(400 <= status < 600 for status in STATUS_OF.values())


def test_the_registry_refuses_a_handler_that_takes_what_its_route_does_not_declare() -> None:
    from aiohttp import web
    from pydantic import BaseModel

    from services.gateway.console.auth import SIGNED_IN, roles
    from services.gateway.console.operators import Role
    from services.gateway.http.registry import Api

    class Body(BaseModel):
        x: int

    api = Api()

    async def wants_who(request: web.Request, *, who: object) -> web.Response:
        return web.Response()

    async def wants_body(request: web.Request, *, body: Body) -> web.Response:
        return web.Response()

    with pytest.raises(TypeError, match="declare auth"):
        api.route("GET", "/a", summary="a")(wants_who)  # auth=True: the handler would get no `who`
    with pytest.raises(TypeError, match="declare body"):
        api.route("POST", "/b", summary="b", auth=SIGNED_IN)(wants_body)
    api.route("POST", "/c", summary="c", auth=roles(Role.ADMIN), body=Body)(wants_body)
    api.route("GET", "/d", summary="d", auth=SIGNED_IN)(wants_who)
    document = api.openapi()
    post = document["paths"]["/c"]["post"]
    assert post["responses"]["401"]["description"] == "console_unauthenticated"
    assert post["responses"]["403"]["description"] == "csrf_failed, forbidden"
    assert "invalid_json" in post["responses"]["400"]["description"]
    get = document["paths"]["/d"]["get"]
    assert "403" not in get["responses"]  # a read needs no CSRF token, and no role was declared
