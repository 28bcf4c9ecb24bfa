"""WeChat subscribe-message rules both sides need: the notify worker renders within them, the sandbox enforces them."""

from __future__ import annotations

# Longest value per data-key type (characters), from the subscribe-message documentation; time and
# date have no documented length, 64 is safe.
VALUE_LIMITS: dict[str, int] = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "time": 64,
    "date": 64,
    "amount": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 20,
    "phrase": 5,
}
