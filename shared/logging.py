"""Structured logging (structlog): JSON in production, readable locally, PII masked on every line.

Personal data must never reach a log unmasked (PIPL; the handbook's privacy rule). Four layers:
values under sensitive keys are masked; those same values are scrubbed wherever else they appear
in the event (an f-string message); phone numbers, ID numbers, long digit runs and WeChat openids are
masked by pattern in every string, as a net for what nobody labelled; and text nobody wrote for a log
(exception messages and tracebacks, the message itself, which this project writes in English) has every
run of Chinese characters masked like a name, since a name is exactly what no pattern can tell apart.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from structlog.types import EventDict, WrappedLogger

# Keys whose values are personal data, and how each is masked.
NAME_KEYS = frozenset({"name", "student_name", "real_name", "nickname", "full_name"})
PHONE_KEYS = frozenset({"phone", "phone_number", "mobile", "purephonenumber", "pure_phone_number"})
STUDENT_NUMBER_KEYS = frozenset({"student_number", "student_no", "xh"})
ID_KEYS = frozenset({"id_last4", "id_masked", "id_number", "id_card", "certificate_number"})
# A WeChat account: openid (per mini-program) and unionid (per developer account) identify a person.
OPENID_KEYS = frozenset(
    {"openid", "owner_openid", "active_owner", "payer_openid", "unionid", "sp_openid", "sub_openid"}
)
# Text written by code that did not mean it for a log: exception messages and tracebacks.
EXCEPTION_KEYS = frozenset({"event", "exception", "exc", "error", "traceback", "stack"})
# A student's id is `<school code>:<student number>`: the school stays readable, the number is masked.
STUDENT_ID_KEYS = frozenset({"student_id"})
SECRET_KEYS = frozenset(
    {"qr_text", "password", "session_key", "token", "access_token", "authorization", "cookie", "key"}
)

# Bounded by non-alphanumerics, so digits inside hex ids and hashes are left alone.
_PHONE_RE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?(1[3-9]\d)\d{4}(\d{4})(?![0-9A-Za-z])")
_ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}\d{7}[\dXx](?![0-9A-Za-z])")
# Student numbers are long digit runs; eight or more digits are masked wherever they appear.
_DIGIT_RUN_RE = re.compile(r"(?<![0-9A-Za-z])(\d{2})\d{4,}(\d{2})(?![0-9A-Za-z])")
# A WeChat openid: 28 characters of [A-Za-z0-9_-], starting with "o" (mini-program and official accounts).
_OPENID_RE = re.compile(
    r"(?<![0-9A-Za-z_-])(o[0-9A-Za-z_-]{3})[0-9A-Za-z_-]{20}([0-9A-Za-z_-]{4})(?![0-9A-Za-z_-])"
)
# Han characters (CJK Unified Ideographs and Extension A, compatibility ideographs) and the name dot.
_HAN_RUN_RE = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff][\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff·]*"
)


def mask_name(value: str) -> str:
    """`赵小明` → `赵**`: the family name stays so support staff can still talk about a case."""
    value = value.strip()
    return value[:1] + "*" * max(len(value) - 1, 1) if value else value


def mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else "****"


def mask_student_number(value: str) -> str:
    value = value.strip()
    return f"{value[:2]}{'*' * max(len(value) - 4, 2)}{value[-2:]}" if len(value) > 4 else "****"


def mask_openid(value: str) -> str:
    """`oAbC…28 chars…wXyZ` → `oAbC****wXyZ`: enough to follow one account through the logs, not to reach it."""
    value = value.strip()
    return f"{value[:4]}****{value[-4:]}" if len(value) >= 12 else "****"


def mask_text(text: str) -> str:
    """Mask phone numbers, ID numbers, long digit runs and openids found anywhere in free text."""
    text = _PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    text = _ID_NUMBER_RE.sub("******************", text)
    text = _OPENID_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _DIGIT_RUN_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def mask_unlabelled_text(text: str) -> str:
    """Exception text and messages: `mask_text`, and every run of Chinese characters masked like a name."""
    return _HAN_RUN_RE.sub(lambda m: mask_name(m.group(0)), mask_text(text))


def mask_student_id(value: str) -> str:
    """`10487:2110216052` → `10487:21******52`."""
    school, sep, number = value.partition(":")
    return f"{school}:{mask_student_number(number)}" if sep else mask_student_number(value)


_PERSONAL_KEYS = NAME_KEYS | PHONE_KEYS | STUDENT_NUMBER_KEYS | ID_KEYS | SECRET_KEYS | OPENID_KEYS


def _mask_for_key(key: str, value: Any) -> Any:
    k = key.lower()
    if k in STUDENT_ID_KEYS and isinstance(value, str):
        return mask_student_id(value)
    if not isinstance(value, str):
        if k in _PERSONAL_KEYS and value is not None:
            return "****"
        return value
    if k in OPENID_KEYS:
        return mask_openid(value)
    if k in NAME_KEYS:
        return mask_name(value)
    if k in PHONE_KEYS:
        return mask_phone(value)
    if k in STUDENT_NUMBER_KEYS:
        return mask_student_number(value)
    if k in ID_KEYS or k in SECRET_KEYS:
        return "****"
    return value


def _is_identifier_key(key: str) -> bool:
    k = key.lower()
    return k == "id" or k.endswith("_id") or k in {"trace", "span", "timestamp"}


def _collect_sensitive(obj: Any, found: dict[str, str], key: str = "") -> None:
    """Map each personal value under a sensitive key to its mask, to scrub it elsewhere too."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _collect_sensitive(v, found, str(k))
    elif isinstance(obj, list | tuple):
        for v in obj:
            _collect_sensitive(v, found, key)
    elif isinstance(obj, str) and key:
        masked = _mask_for_key(key, obj)
        if masked != obj and len(obj.strip()) >= 2:
            found[obj.strip()] = masked
            if key.lower() in STUDENT_ID_KEYS and ":" in obj:  # the number alone, wherever it appears
                number = obj.partition(":")[2].strip()
                if len(number) >= 2:
                    found[number] = mask_student_number(number)


def _redact(obj: Any, sensitive: dict[str, str], key: str = "") -> Any:
    if isinstance(obj, Mapping):
        return {k: _redact(v, sensitive, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact(v, sensitive, key) for v in obj]
    if key:
        masked = _mask_for_key(key, obj)
        if masked != obj:
            return masked
    if isinstance(obj, str):
        if _is_identifier_key(key):
            return obj  # our own ids (uuids, hex) identify no person and must stay searchable
        for value, masked in sensitive.items():
            obj = obj.replace(value, masked)
        return mask_unlabelled_text(obj) if key.lower() in EXCEPTION_KEYS else mask_text(obj)
    return obj


def redact_pii(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask personal data in every key, value and message."""
    found: dict[str, str] = {}
    _collect_sensitive(event_dict, found)
    # Longest first, so a full name is replaced before a shorter value that it contains.
    ordered = dict(sorted(found.items(), key=lambda kv: len(kv[0]), reverse=True))
    redacted = _redact(event_dict, ordered)
    assert isinstance(redacted, MutableMapping)
    return dict(redacted)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Looked up at each call, so a replaced sys.stderr (test capture, a reopened stream) is honoured.
    return structlog.PrintLogger(sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(*, service: str, level: str = "INFO", json_logs: bool = False) -> None:
    """Configure structlog and the standard library so that every line goes through redaction."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_pii,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aio-pika, aiohttp, pymongo) log through the standard library: route them through the
    # same processors so their lines are structured and redacted too.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level.upper()), logging.INFO))
    for noisy in ("aiormq", "aio_pika", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
