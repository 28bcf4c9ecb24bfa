"""Event handlers: `order.paid.v1`, failed `match.scored.v1`, `review.decided.v1` → one subscribe message each.

At most once per event, even across a crash: the attempt is recorded in `notifications` (`_id` = event
id, state `sending`) before WeChat is called, and the answer after. A redelivery that finds `sending`
cannot know whether WeChat delivered (it has no idempotency key), so it records `unknown` and does not
send again (docs/notify.md).

No bus claim (shared/idempotency.py): the `notifications` record is the claim. Its unique `_id` lets one
copy of an event record `sending` first (the other defers); a copy that finds `sending` younger than
`NOTIFY_SENDING_GRACE_S` (longer than the slowest send) defers until the sender has answered, and one that
finds it older knows the sender died after calling WeChat; a copy that finds a final state skips. That is the
claim's job, done by the record that has to be written anyway: two database writes fewer per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client import Counter, Histogram
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from services.notify.config import Kind, NotifySettings
from services.notify.outcomes import FINAL, State, Verdict, classify, offending_field
from services.notify.ratelimit import SendPace
from services.notify.render import MessageFacts, render
from shared.bus import Defer, PermanentError, Subscription
from shared.db import Database, Document, stored_time
from shared.events import Envelope, MatchScored, OrderPaid, ReviewDecided, utcnow
from shared.logging import get_logger
from shared.wechat.errors import WeChatError
from shared.wechat.miniprogram import WeChatClient

log = get_logger(__name__)

INDEXES = {
    "notifications": [
        # Operators' view: what is not delivered, newest first; and one student's messages.
        IndexModel([("state", 1), ("updated_at", -1)]),
        IndexModel([("application_id", 1), ("created_at", -1)]),
        IndexModel([("student_id", 1)]),
    ]
}

OUTCOMES = Counter(
    "notify_messages_total", "Notifications by kind and final or interim state", ["kind", "state"]
)
SEND_SECONDS = Histogram(
    "notify_send_seconds",
    "Time of one subscribe/send call (token refresh included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class SendLater(Exception):
    """WeChat did not send this time (quota, busy): the bus retries through the retry queue."""


class NotifyHandlers:
    def __init__(self, database: Database, settings: NotifySettings, client: WeChatClient) -> None:
        self._notifications = database.db["notifications"]
        self._applications = database.db["applications"]
        self._settings = settings
        self._client = client
        self._pace = SendPace(settings.notify_send_rate)

    def subscription(self) -> Subscription:
        sub = Subscription("notify")
        # Idempotent by construction (the module's docstring): the notification record is the claim.
        sub.on(OrderPaid, claim=False)(self.on_order_paid)
        sub.on(MatchScored, claim=False)(self.on_match_scored)
        sub.on(ReviewDecided, claim=False)(self.on_review_decided)
        return sub

    async def on_order_paid(self, payload: OrderPaid, envelope: Envelope) -> list[Envelope]:
        # The order number the student saw; WeChat's transaction id when the application lacks it.
        facts = {
            "paid_at": payload.paid_at,
            "amount_fen": payload.amount_fen,
            "order_no": payload.transaction_id,
        }
        await self._notify(envelope, "order_paid", payload.student_id, facts)
        return []

    async def on_match_scored(self, payload: MatchScored, envelope: Envelope) -> list[Envelope]:
        if payload.passed:
            return []  # a passed comparison goes on to manual review: the student hears the review's result
        facts = {"reason": payload.message, "score": payload.score if payload.reason is None else None}
        await self._notify(envelope, "match_failed", payload.student_id, facts)
        return []

    async def on_review_decided(self, payload: ReviewDecided, envelope: Envelope) -> list[Envelope]:
        kind: Kind = "review_approved" if payload.decision == "approved" else "review_rejected"
        await self._notify(envelope, kind, payload.student_id, {"reason": payload.reason})
        return []

    # --- one notification -------------------------------------------------------------------------

    async def _notify(
        self,
        envelope: Envelope,
        kind: Kind,
        student_id: str,
        event_facts: dict[str, Any],
    ) -> None:
        # Both reads at once: the application is wasted only on the rare redelivery of a settled event.
        existing, application = await asyncio.gather(
            self._notifications.find_one({"_id": envelope.id}), self._application(envelope.application_id)
        )
        if existing is not None and not await self._may_send(existing):
            return
        base: Document = {
            "event_type": envelope.type,
            "kind": kind,
            "application_id": envelope.application_id,
            "student_id": student_id,
            "school_code": (application or {}).get("school_code"),
        }
        openid = (application or {}).get("owner_openid")
        if application is None or not openid:
            reason = "no_application" if application is None else "no_account_bound"
            await self._record_final(envelope.id, existing, base, State.NOT_DELIVERABLE, reason)
            log.warning("notification not deliverable", kind=kind, reason=reason)
            return
        spec = self._settings.template_for(base["school_code"], kind)
        if spec is None:
            await self._record_final(envelope.id, existing, base, State.SKIPPED, "no_template")
            log.warning("no template for this school and kind", kind=kind, school_code=base["school_code"])
            return
        code = application.get("verified_code") or {}
        order = application.get("order") or {}
        if "order_no" in event_facts and order.get("out_trade_no"):
            event_facts = {**event_facts, "order_no": order["out_trade_no"]}
        facts = MessageFacts(
            kind=kind,
            school_name=code.get("school_name"),
            student_name=code.get("masked_name"),
            decided_at=envelope.occurred_at,
            **event_facts,
        )
        data = render(spec.fields, facts)
        message = {**base, "template_id": spec.template_id, "page": spec.page, "data": data, "touser": openid}

        await self._pace.wait()
        attempt = await self._mark_sending(envelope.id, existing, message)
        started = time.perf_counter()
        try:
            await self._client.send_subscribe_message(
                openid,
                spec.template_id,
                data,
                page=spec.page,
                miniprogram_state=self._settings.notify_miniprogram_state,
                lang=self._settings.notify_lang,
            )
        except WeChatError as exc:
            SEND_SECONDS.observe(time.perf_counter() - started)
            await self._answered(envelope.id, kind, attempt, exc, data)
            return
        SEND_SECONDS.observe(time.perf_counter() - started)
        await self._set(envelope.id, attempt, State.SENT, sent_at=utcnow(), errcode=0, errmsg="ok")
        OUTCOMES.labels(kind, State.SENT).inc()
        log.info("notification sent", kind=kind, template_id=spec.template_id, attempt=attempt)

    async def _may_send(self, existing: Document) -> bool:
        """False when an earlier delivery of this event settled it, or may have reached WeChat."""
        state = existing.get("state")
        if state == State.SENDING:
            # A retry's record comes back from nx-27017 as naive ISO text: still the sender's time.
            since = stored_time(existing.get("updated_at"))
            age = (utcnow() - since).total_seconds() if since is not None else float("inf")
            if age < self._settings.notify_sending_grace_s:
                # Another copy may be calling WeChat right now: look again once it has had time to answer.
                raise Defer(
                    "another delivery is sending this event", self._settings.notify_sending_grace_s - age
                )
            # The process died (or lost the database) between calling WeChat and recording the answer.
            await self._notifications.update_one(
                {"_id": existing["_id"], "state": State.SENDING, "attempts": existing.get("attempts")},
                {
                    "$set": {
                        "state": State.UNKNOWN,
                        "reason": "interrupted_after_send",
                        "updated_at": utcnow(),
                    }
                },
            )
            OUTCOMES.labels(existing.get("kind", "?"), State.UNKNOWN).inc()
            log.warning("earlier attempt may have been delivered, not resending", kind=existing.get("kind"))
            return False
        if state in FINAL:
            log.info("notification already settled", state=state, kind=existing.get("kind"))
            return False
        return True  # RETRYING or FAILED (redriven by an operator): WeChat proved it did not send

    async def _application(self, application_id: str | None) -> Document | None:
        if not application_id:
            return None
        projection = {"owner_openid": 1, "school_code": 1, "verified_code": 1, "order": 1}
        return await self._applications.find_one({"_id": application_id}, projection)

    async def _mark_sending(self, event_id: str, existing: Document | None, message: Document) -> int:
        """Record the attempt before calling WeChat; returns its number. Raises SendLater on a lost race."""
        now = utcnow()
        if existing is None:
            try:
                await self._notifications.insert_one(
                    {
                        "_id": event_id,
                        **message,
                        "state": State.SENDING,
                        "attempts": 1,
                        "history": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            except DuplicateKeyError:
                raise Defer("another delivery of this event recorded it first", 1.0) from None
            return 1
        attempt = int(existing.get("attempts", 0)) + 1
        written = await self._notifications.update_one(
            {"_id": event_id, "state": existing["state"], "attempts": existing.get("attempts", 0)},
            {"$set": {**message, "state": State.SENDING, "attempts": attempt, "updated_at": now}},
        )
        if written.modified_count != 1:
            raise Defer("another delivery of this event changed it first", 1.0)
        return attempt

    async def _answered(
        self, event_id: str, kind: str, attempt: int, exc: WeChatError, data: dict[str, dict[str, str]]
    ) -> None:
        verdict: Verdict = classify(exc.errcode, exc.errmsg)
        state = verdict.state
        if verdict.retry and attempt >= self._settings.bus_max_attempts:
            state = State.FAILED
        entry = {
            "attempt": attempt,
            "at": utcnow().isoformat(),
            "errcode": exc.errcode,
            "errmsg": exc.errmsg[:300],
        }
        doc = await self._notifications.find_one({"_id": event_id}, {"history": 1})
        history = [*((doc or {}).get("history") or []), entry][-20:]
        await self._set(
            event_id,
            attempt,
            state,
            errcode=exc.errcode,
            errmsg=exc.errmsg[:300],
            reason=verdict.reason,
            history=history,
        )
        OUTCOMES.labels(kind, state).inc()
        if exc.errcode == 47003:
            field = offending_field(exc.errmsg)
            # The value's length, not the value: it may be a name.
            length = len(data[field]["value"]) if field in data else None
            log.error(
                "WeChat refused a field", kind=kind, field=field, value_length=length, errmsg=exc.errmsg[:200]
            )
        elif state == State.FAILED:
            log.error("still refused after the last attempt, parked", kind=kind, errcode=exc.errcode)
            raise PermanentError(f"WeChat errcode {exc.errcode} after {attempt} attempts")
        elif verdict.retry:
            log.warning("WeChat refused for now, will retry", kind=kind, errcode=exc.errcode, attempt=attempt)
            raise SendLater(f"WeChat errcode {exc.errcode}: {exc.errmsg[:200]}")
        else:
            log.warning(
                "notification not sent", kind=kind, state=state, errcode=exc.errcode, reason=verdict.reason
            )

    async def _set(self, event_id: str, attempt: int, state: State, **fields: Any) -> None:
        await self._notifications.update_one(
            {"_id": event_id, "attempts": attempt},
            {"$set": {"state": state, "updated_at": utcnow(), **fields}},
        )

    async def _record_final(
        self, event_id: str, existing: Document | None, base: Document, state: State, reason: str
    ) -> None:
        now = utcnow()
        OUTCOMES.labels(base["kind"], state).inc()
        if existing is None:
            with contextlib.suppress(DuplicateKeyError):
                await self._notifications.insert_one(
                    {
                        "_id": event_id,
                        **base,
                        "state": state,
                        "reason": reason,
                        "attempts": 0,
                        "history": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            return
        await self._notifications.update_one(
            {"_id": event_id, "state": existing["state"]},
            {"$set": {**base, "state": state, "reason": reason, "updated_at": now}},
        )
