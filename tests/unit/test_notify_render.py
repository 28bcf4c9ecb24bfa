"""Rendering subscribe-message values within WeChat's per-type limits; the verdict on each errcode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notify.config import DEMO_TEMPLATES, NotifySettings, TemplateSpec
from services.notify.outcomes import State, classify, offending_field
from services.notify.ratelimit import SendPace
from services.notify.render import MessageFacts, check_template, fit, render


def test_thing_is_cut_to_20_characters_with_an_ellipsis() -> None:
    value = fit("thing", "照片背景颜色不符合要求，请在浅蓝色背景前重新拍摄一张照片")
    assert len(value) == 20 and value.endswith("…")
    assert fit("thing", "短") == "短"
    assert fit("thing", "第一行\n第二行\t 第三行") == "第一行 第二行 第三行"


def test_phrase_keeps_at_most_five_chinese_characters() -> None:
    assert fit("phrase", "审核未通过") == "审核未通过"
    assert fit("phrase", "审核未通过（请重新提交）") == "审核未通过"
    assert fit("phrase", "OK!") == "无"  # nothing Chinese left: WeChat refuses empty values


def test_name_is_ten_chinese_or_twenty_letters() -> None:
    assert fit("name", "赵**") == "赵**"
    assert fit("name", "欧阳" + "娜" * 12) == "欧阳" + "娜" * 8
    assert fit("name", "A" * 30) == "A" * 20


def test_character_string_number_amount_time_and_date() -> None:
    assert fit("character_string", "GP-20261128-" + "x" * 40) == ("GP-20261128-" + "x" * 40)[:32]
    assert fit("character_string", "订单 A1") == "A1"
    assert fit("number", 72.46) == "72.5"
    assert fit("number", 80.0) == "80"
    assert fit("amount", 3000) == "¥30.00"
    assert fit("amount", 5) == "¥0.05"
    moment = datetime(2026, 11, 28, 9, 5, tzinfo=UTC)
    assert fit("time", moment) == "2026年11月28日 17:05"  # China time
    assert fit("date", moment) == "2026年11月28日"
    assert fit("thing", None) == "无" and fit("character_string", "") == "-"


def test_render_fills_every_key_from_its_source() -> None:
    spec = DEMO_TEMPLATES["10487"]["review_rejected"]
    facts = MessageFacts(
        kind="review_rejected",
        school_name="示范大学继续教育学院（函授站）高起本护理学专业",
        student_name="赵**",
        reason="照片有反光，眼镜镜片反光遮挡眼睛，请摘下眼镜后重新拍摄",
        decided_at=datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
    )
    data = render(spec.fields, facts)
    assert data == {
        "thing1": {"value": "示范大学继续教育学院（函授站）高起本护…"},
        "name2": {"value": "赵**"},
        "phrase3": {"value": "审核未通过"},
        "thing4": {"value": "照片有反光，眼镜镜片反光遮挡眼睛，请摘…"},
        "time5": {"value": "2026年11月28日 10:00"},
    }
    assert render({"thing1": "text:请查看"}, facts) == {"thing1": {"value": "请查看"}}


def test_bad_template_configuration_is_refused() -> None:
    assert check_template({"thing1": "reason"}) is None
    assert "unknown source" in (check_template({"thing1": "phone"}) or "")
    assert "not <type><n>" in (check_template({"weird": "reason"}) or "")
    with pytest.raises(ValueError, match="unknown source"):
        NotifySettings.model_validate(
            {"notify_templates": {"1": {"order_paid": {"template_id": "t", "fields": {"thing1": "nope"}}}}}
        )
    settings = NotifySettings.model_validate(
        {"notify_templates": {"*": {"order_paid": {"template_id": "t", "fields": {"thing1": "result"}}}}}
    )
    assert settings.template_for("99999", "order_paid") == TemplateSpec(
        template_id="t", fields={"thing1": "result"}
    )
    assert settings.template_for("99999", "review_approved") is None


@pytest.mark.parametrize(
    ("errcode", "errmsg", "state", "retry"),
    [
        (43101, "user refuse to accept the msg", State.NOT_DELIVERABLE, False),
        (45009, "reach max api daily quota limit", State.RETRYING, True),
        (45011, "api minute-quota reach limit", State.RETRYING, True),
        (-1, "system error", State.RETRYING, True),
        (-1, "transport error: cannot connect to 127.0.0.1:9", State.RETRYING, True),
        (-1, "transport error: TimeoutError", State.UNKNOWN, False),
        (47003, "argument invalid! data.thing1.value invalid", State.REJECTED, False),
        (40037, "invalid template_id", State.REJECTED, False),
        (42001, "access_token expired", State.RETRYING, True),
    ],
)
def test_each_errcode_has_its_verdict(errcode: int, errmsg: str, state: State, retry: bool) -> None:
    verdict = classify(errcode, errmsg)
    assert (verdict.state, verdict.retry) == (state, retry)


def test_the_offending_field_is_read_from_the_errmsg() -> None:
    assert offending_field("argument invalid! data.thing12.value invalid rid: 1") == "thing12"
    assert offending_field("argument invalid!") is None


async def test_the_pace_spaces_slots_evenly() -> None:
    now = [100.0]
    pace = SendPace(200, clock=lambda: now[0])
    for _ in range(3):
        await pace.wait()  # the clock does not move: later slots sleep for real, 5 ms apart
    assert pace._next == pytest.approx(100.015)
    unlimited = SendPace(0)
    await unlimited.wait()
