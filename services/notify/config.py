"""Notify settings: the send rate, and per school the subscribe templates and where each field comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.config import Settings

# What a message is about; each school maps these to one of its subscribe templates.
Kind = Literal["order_paid", "match_failed", "review_approved", "review_rejected"]
KINDS: tuple[Kind, ...] = ("order_paid", "match_failed", "review_approved", "review_rejected")


class TemplateSpec(BaseModel):
    """One subscribe template: its id, the mini-program page it opens, and each data key's source.

    `fields` maps WeChat's data key (`thing1`, `phrase2`, ...; its prefix is the value type that
    limits the value) to a source name of `services/notify/render.py` (`result`, `amount`, ...) or to
    literal text written `text:...`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    template_id: str = Field(min_length=1, max_length=128)
    page: str | None = Field(default="pages/status/index", max_length=1024)
    fields: dict[str, str] = Field(min_length=1)


# The demo school's templates (`make run`, `make demo`, the tests). Real template ids come from the
# mini-program console (订阅消息 → 我的模板) and go into NOTIFY_TEMPLATES per school.
_DEMO_FIELDS_RESULT = {
    "thing1": "school_name",
    "name2": "student_name",
    "phrase3": "result",
    "thing4": "reason",
    "time5": "decided_at",
}
DEMO_TEMPLATES: dict[str, dict[Kind, TemplateSpec]] = {
    "10487": {
        "order_paid": TemplateSpec(
            template_id="demo_order_paid",
            fields={
                "thing1": "school_name",
                "name2": "student_name",
                "amount3": "amount",
                "time4": "paid_at",
                "character_string5": "order_no",
            },
        ),
        "match_failed": TemplateSpec(template_id="demo_match_result", fields=_DEMO_FIELDS_RESULT),
        "review_approved": TemplateSpec(template_id="demo_review_result", fields=_DEMO_FIELDS_RESULT),
        "review_rejected": TemplateSpec(template_id="demo_review_result", fields=_DEMO_FIELDS_RESULT),
    }
}


class NotifySettings(Settings):
    service_name: str = "notify"
    http_port: int = 8184
    # Sending is I/O-bound: more messages in flight than the CPU-bound workers' default.
    bus_prefetch: int = Field(default=32, ge=1, le=1000)
    # school code → kind → template (JSON in NOTIFY_TEMPLATES). "*" is used for schools not listed.
    notify_templates: dict[str, dict[Kind, TemplateSpec]] = Field(default_factory=lambda: DEMO_TEMPLATES)
    # Messages per second this worker sends at most (0: unlimited). WeChat limits calls per appid.
    notify_send_rate: float = Field(default=0.0, ge=0)
    notify_miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    notify_lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] = "zh_CN"
    # How long a `sending` record may belong to a live sender: longer than the slowest send (a token fetch,
    # the call, a token refresh and the call again, each up to WECHAT_TIMEOUT_S = 10 s). Another copy of the
    # event defers while the record is younger; an older one means the sender died after calling WeChat.
    notify_sending_grace_s: float = Field(default=45.0, gt=0)

    @field_validator("notify_templates")
    @classmethod
    def _known_sources(
        cls, value: dict[str, dict[Kind, TemplateSpec]]
    ) -> dict[str, dict[Kind, TemplateSpec]]:
        from services.notify.render import check_template

        for school, kinds in value.items():
            for kind, spec in kinds.items():
                problem = check_template(spec.fields)
                if problem:
                    raise ValueError(f"{school}.{kind}: {problem}")
        return value

    def template_for(self, school_code: str | None, kind: Kind) -> TemplateSpec | None:
        school = self.notify_templates.get(school_code or "") or self.notify_templates.get("*") or {}
        return school.get(kind)
