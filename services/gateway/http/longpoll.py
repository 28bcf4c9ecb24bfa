"""Long polls: a handler that waits for a change stops as soon as its client has gone, so a closed
connection never keeps a loop reading the database until its deadline."""

from __future__ import annotations

from aiohttp import web


def client_gone(request: web.Request) -> bool:
    """Whether the connection this request came on is closed (aiohttp does not cancel the handler)."""
    transport = request.transport
    return transport is None or transport.is_closing()
