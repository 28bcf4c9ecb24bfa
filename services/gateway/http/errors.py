"""Errors as values a client can act on: a stable code, a Chinese message, never a bare 500."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from aiohttp import web

from services.gateway.messages import ERROR_MESSAGES

_dumps = functools.partial(json.dumps, ensure_ascii=False)

#: The `fields` entry of a 400 for a body that could not be parsed at all.
MALFORMED_BODY = {"field": "body", "error": "malformed"}


# A timestamp without an offset. Every time this system keeps is UTC, but the local database stand-in
# (nx-27017) hands back datetimes written by updates as naive text; pydantic then renders them without an
# offset, which is not RFC 3339 `date-time`. Answers mark them as UTC here, in one place.
_NAIVE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?")


def _utc_marked(value: Any) -> Any:
    if isinstance(value, str):
        return value + "Z" if len(value) <= 26 and _NAIVE_TIMESTAMP.fullmatch(value) else value
    if isinstance(value, dict):
        return {k: _utc_marked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc_marked(v) for v in value]
    return value


def json_response(body: Any, status: int = 200) -> web.Response:
    """JSON with Chinese text as UTF-8, not \\u escapes (readable in the mini-program's debugger)."""
    return web.json_response(_utc_marked(body), status=status, dumps=_dumps)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None, **details: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, ERROR_MESSAGES["internal_error"])
        self.details = details
