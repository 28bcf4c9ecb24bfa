"""The middlewares every gateway request passes: a request id and an access log line, then errors
(ApiError, the domain's DomainError, aiohttp's own) turned into the JSON error body
`{code, message, request_id, details?}`, with the status from `statuses.STATUS_OF`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter, Histogram

from services.gateway.context import REQUEST_ID
from services.gateway.domain.errors import DomainError
from services.gateway.http.errors import MALFORMED_BODY, ApiError, json_response
from services.gateway.http.statuses import HTTP_CODES, STATUS_OF
from services.gateway.messages import ERROR_MESSAGES
from services.gateway.store import ConcurrentUpdate
from shared.logging import get_logger

log = get_logger(__name__)

REQUESTS = Counter("http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter("http_errors_total", "HTTP error responses by code", ["code"])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    request: web.Request, status: int, code: str, message: str, **details: Any
) -> web.Response:
    ERRORS.labels(code).inc()
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request.get(REQUEST_ID)}
    if details:
        body["details"] = details
    return json_response(body, status=status)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id on every request, log line and response; one access log line with latency."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if 8 <= len(incoming) <= 64 and incoming.isascii() else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(request.method, route).observe(elapsed)
        if route not in ("/healthz", "/readyz", "/metrics"):
            log.info(
                "http request", method=request.method, route=route, status=status, ms=round(elapsed * 1000, 1)
            )
        structlog.contextvars.unbind_contextvars("request_id", "application_id")


@web.middleware
async def error_handling(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(request, exc.status, exc.code, exc.message, **exc.details)
    except DomainError as exc:
        # A decision refused: its status from the one table, its message by the same code.
        message = ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["internal_error"])
        return error_response(request, STATUS_OF.get(exc.code, 400), exc.code, message, **exc.details)
    except ConcurrentUpdate:
        return error_response(request, 409, "busy", ERROR_MESSAGES["busy"])
    except HttpProcessingError:
        # A body the parser cannot read (a multipart part with a broken header, ...): the caller's fault.
        return error_response(
            request, 400, "invalid_request", ERROR_MESSAGES["invalid_request"], fields=[MALFORMED_BODY]
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "invalid_request" if exc.status < 500 else "internal_error")
        return error_response(request, exc.status, code, ERROR_MESSAGES.get(code, exc.reason))
    except Exception as exc:
        if type(exc) is LookupError:
            # Applications.mutate: the document went between the handler's read and its write (erased by
            # an admin meanwhile). Exactly LookupError: a KeyError or IndexError is a bug and stays a 500.
            return error_response(request, 404, "not_found", ERROR_MESSAGES["not_found"])
        log.exception("unhandled error", path=request.rel_url.path)
        return error_response(request, 500, "internal_error", ERROR_MESSAGES["internal_error"])
