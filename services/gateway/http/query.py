"""Query parameters as declared on a route: a numeric one must be a finite number (an integer where
declared so) within its declared `minimum`/`maximum`, otherwise 400 `invalid_request` naming the field.
`nan`, `inf` and `1e999` never reach a handler (a long poll whose deadline is NaN never ends)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from services.gateway.http.errors import ApiError

Declared = Mapping[str, str | dict[str, Any]]


def query_schema(kind: str | dict[str, Any]) -> dict[str, Any]:
    """A declared parameter's JSON schema: a type name ("integer") or the schema itself."""
    return kind if isinstance(kind, dict) else {"type": kind}


def _invalid(name: str, error: str) -> ApiError:
    return ApiError(400, "invalid_request", fields=[{"field": name, "error": error}])


def parse_number(name: str, text: str, schema: Mapping[str, Any]) -> float | int:
    """`text` as the declared number, or ApiError 400."""
    integer = schema.get("type") == "integer"
    try:
        value: float | int = int(text.strip()) if integer else float(text)
    except ValueError:
        raise _invalid(name, "not_an_integer" if integer else "not_a_number") from None
    if not math.isfinite(value):
        raise _invalid(name, "not_a_number")
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _invalid(name, "out_of_range")
    return value


def check_query(request: web.Request, declared: Declared) -> None:
    """Refuse any declared numeric parameter that is not a finite number in range (repeated: each copy)."""
    for name, kind in declared.items():
        schema = query_schema(kind)
        if schema.get("type") not in ("integer", "number"):
            continue
        for text in request.query.getall(name, []):
            parse_number(name, text, schema)


def query_number(request: web.Request, name: str, declared: Declared, default: float) -> float:
    """A declared numeric parameter's value (already checked by the registry), or `default`."""
    text = request.query.get(name)
    return default if text is None else float(parse_number(name, text, query_schema(declared[name])))
