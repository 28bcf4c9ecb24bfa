"""Domain errors: a refusal with a stable code the client can act on, and nothing about HTTP.

The HTTP layer maps each code to a status in one table; the message shown to the student comes from
`services/gateway/messages.py` by the same code.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A decision refused: `code` is stable (e.g. "illegal_transition"), `details` explain it."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details

    def __repr__(self) -> str:
        return f"DomainError({self.code!r}, {self.details!r})"
