"""What a WeChat answer means for one notification: its recorded state and whether to try again.

At most once: WeChat's subscribe/send has no idempotency key, so a send whose fate is unknown is never
repeated. Only answers that prove the message was not delivered (an errcode from WeChat, a refused
connection) may lead to another attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.notifications import FINAL as FINAL
from shared.notifications import State as State

# 45009 daily quota, 45011 minute quota, -1 system busy: WeChat did not send, later may work.
_RETRY_LATER = frozenset({-1, 45009, 45011})
_TOKEN = frozenset({40001, 40014, 42001})
_FIELD_RE = re.compile(r"data\.([A-Za-z_]+\d+)")


@dataclass(frozen=True)
class Verdict:
    state: State
    retry: bool
    reason: str


def classify(errcode: int, errmsg: str) -> Verdict:
    """The verdict on a WeChatError from send_subscribe_message (token refresh already tried once)."""
    if errcode == 43101:
        return Verdict(State.NOT_DELIVERABLE, False, "user_refused")
    if errcode == -1 and errmsg.startswith("transport error:") and "cannot connect" not in errmsg:
        # A timeout or a dropped connection after the request left: WeChat may have delivered it.
        return Verdict(State.UNKNOWN, False, "no_answer")
    if errcode in _RETRY_LATER:
        return Verdict(State.RETRYING, True, "quota" if errcode in (45009, 45011) else "wechat_busy")
    if errcode in _TOKEN:
        return Verdict(State.RETRYING, True, "token_rejected_twice")
    if errcode == 47003:
        return Verdict(State.REJECTED, False, "invalid_data")
    return Verdict(State.REJECTED, False, f"errcode_{errcode}")


def offending_field(errmsg: str) -> str | None:
    """The data key WeChat complained about in a 47003 (`... data.thing1.value ...`), if it says."""
    match = _FIELD_RE.search(errmsg)
    return match.group(1) if match else None
