"""Subscribe-message data: each template key filled from its source and fitted to WeChat's limit for its type.

WeChat refuses a whole message (47003) when one value breaks its type's rule, so values are truncated or
reformatted here, never sent too long. Rules from the subscribe-message documentation
(订阅消息 → 模板参数值要求): thing ≤ 20 characters; number ≤ 32 digits (decimals allowed); letter ≤ 32
letters; symbol ≤ 5; character_string ≤ 32 digits, letters or symbols; time a 24-hour time (with date);
date a date; amount a currency sign and ≤ 10 digits (decimals allowed, may end in 元); phone_number ≤ 17;
car_number ≤ 8; name ≤ 10 Chinese characters or ≤ 20 letters; phrase ≤ 5 Chinese characters. An empty
value is refused too. No I/O here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from services.notify.messages import NO_VALUE, RESULT, TIP
from shared.wechat.subscribe import VALUE_LIMITS

CHINA_TZ = timezone(timedelta(hours=8))
_KEY_RE = re.compile(r"^([a-z_]+?)(\d+)$")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LITERAL_PREFIX = "text:"
ELLIPSIS = "…"

# Characters at most, per value type.
LIMITS = VALUE_LIMITS
# What an empty source becomes: WeChat refuses empty values.
_FALLBACK = {"thing": NO_VALUE, "phrase": NO_VALUE, "name": NO_VALUE, "number": "0", "letter": "N"}

SOURCES = frozenset(
    {
        "school_name",
        "student_name",
        "result",
        "reason",
        "tip",
        "decided_at",
        "paid_at",
        "amount",
        "order_no",
        "score",
    }
)

Value = str | int | float | datetime | None


@dataclass(frozen=True)
class MessageFacts:
    """Everything a template may show, gathered from the event and the application."""

    kind: str
    school_name: str | None = None
    student_name: str | None = None  # already masked (`赵**`): the full name never leaves the gateway
    reason: str | None = None
    decided_at: datetime | None = None
    paid_at: datetime | None = None
    amount_fen: int | None = None
    order_no: str | None = None
    score: float | None = None

    def source(self, name: str) -> Value:
        if name.startswith(LITERAL_PREFIX):
            return name[len(LITERAL_PREFIX) :]
        if name == "result":
            return RESULT.get(self.kind)
        if name == "tip":
            return TIP.get(self.kind)
        if name == "reason":
            return self.reason or TIP.get(self.kind)
        if name == "amount":
            return None if self.amount_fen is None else self.amount_fen
        value: Value = getattr(self, name)
        return value


def value_type(key: str) -> str | None:
    """`thing12` → `thing`; None for a key that is not WeChat's `<type><number>`."""
    match = _KEY_RE.match(key)
    return match.group(1) if match and match.group(1) in LIMITS else None


def check_template(fields: Mapping[str, str]) -> str | None:
    """A configuration problem in a template's field mapping, or None."""
    for key, source in fields.items():
        if value_type(key) is None:
            return f"data key {key!r} is not <type><n> with a known type ({', '.join(sorted(LIMITS))})"
        if not source.startswith(LITERAL_PREFIX) and source not in SOURCES:
            return f"{key}: unknown source {source!r} (one of {', '.join(sorted(SOURCES))}, or text:...)"
    return None


def render(fields: Mapping[str, str], facts: MessageFacts) -> dict[str, dict[str, str]]:
    """The `data` object of subscribe/send: every value fitted to its type."""
    data: dict[str, dict[str, str]] = {}
    for key, source in fields.items():
        kind = value_type(key)
        assert kind is not None, key  # checked when the settings were loaded
        data[key] = {"value": fit(kind, facts.source(source))}
    return data


def fit(kind: str, value: Value) -> str:
    """Format `value` for a value type and cut it to the type's limit."""
    if isinstance(value, datetime):
        local = value.astimezone(CHINA_TZ)
        text = local.strftime("%Y年%m月%d日") if kind == "date" else local.strftime("%Y年%m月%d日 %H:%M")
    elif kind == "amount" and isinstance(value, int):
        text = f"¥{value // 100}.{value % 100:02d}"
    elif isinstance(value, float):
        text = f"{value:.1f}".rstrip("0").rstrip(".")
    else:
        text = "" if value is None else str(value)
    text = _clean(text)
    if kind == "phrase":
        text = "".join(_HAN_RE.findall(text))[:5]
    elif kind == "name":
        # Ten Chinese characters, or twenty letters and symbols.
        text = text[:10] if _HAN_RE.search(text) else text[:20]
    elif kind == "number":
        text = re.sub(r"[^0-9.\-]", "", text)[:32]
    elif kind == "letter":
        text = re.sub(r"[^A-Za-z]", "", text)[:32]
    elif kind in ("character_string", "phone_number", "car_number", "symbol", "amount"):
        if kind == "character_string":
            text = "".join(ch for ch in text if ch.isascii() and ch.isprintable() and ch != " ")
        text = text[: LIMITS[kind]]
    else:
        limit = LIMITS[kind]
        if len(text) > limit:
            text = text[: limit - 1] + ELLIPSIS
    return text or _FALLBACK.get(kind, "-")


def _clean(text: str) -> str:
    """One line: control characters (newlines in an operator's reason) become spaces, runs collapse."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()
