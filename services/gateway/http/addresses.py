"""The client's address, for the login limiters and the audit log.

`X-Forwarded-For` is honoured only when the connection comes from a configured trusted proxy
(`GATEWAY_TRUSTED_PROXIES`, CIDRs): the header is read from the right, skipping trusted hops, and the
first untrusted hop is the client. A caller connecting directly, or an entry a client invented to the
left of what our proxies appended, is never believed: trusting the first entry would let anyone pick
a new address per request and walk past every limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from shared.logging import get_logger

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: More hops than any real chain of proxies: a longer header is not walked further.
MAX_HOPS = 32


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """Comma-separated CIDRs (or single addresses); a malformed entry raises ValueError naming it."""
        networks: list[IPNetwork] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"GATEWAY_TRUSTED_PROXIES: {entry!r} is not an address or CIDR") from None
        return cls(tuple(networks))

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client behind `peer` (the TCP peer) given the X-Forwarded-For header lines, in order."""
        current = _address(peer or "")
        if current is None:
            return peer or "unknown"
        if not self.trusts(current):
            return str(current)
        hops = [hop for line in forwarded_for for hop in line.split(",") if hop.strip()]
        for hop in reversed(hops[-MAX_HOPS:]):
            address = _address(hop)
            if address is None:
                break  # not an address: the last hop we could trust handed it over
            current = address
            if not self.trusts(address):
                break
        return str(current)


TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)
CLIENT_ADDRESS = web.RequestKey("client_address", str)
_warned: set[str] = set()


def client_address(request: web.Request) -> str:
    """The caller's address (see the module docstring); computed once per request."""
    known = request.get(CLIENT_ADDRESS)
    if known is None:
        proxies = request.app.get(TRUSTED_PROXIES) or TrustedProxies()
        forwarded = request.headers.getall("X-Forwarded-For", [])
        known = proxies.client(request.remote, forwarded)
        request[CLIENT_ADDRESS] = known
        peer = _address(request.remote or "")
        if (
            forwarded
            and peer is not None
            and peer.is_private
            and not proxies.trusts(peer)
            and known not in _warned
        ):
            # A proxy we do not trust, inside the cluster: every client then shares its address. Said once.
            _warned.add(known)
            log.warning(
                "X-Forwarded-For from an untrusted private peer ignored: check GATEWAY_TRUSTED_PROXIES"
            )
    return known
