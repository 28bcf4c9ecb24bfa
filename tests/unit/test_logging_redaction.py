"""Personal data never reaches a log line unmasked (handbook, non-negotiable 7)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.logging import configure_logging, mask_name, mask_text, redact_pii


@pytest.fixture
def json_log(capsys):
    configure_logging(service="test", level="INFO", json_logs=True)

    def lines() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    yield lines
    structlog.contextvars.clear_contextvars()


def test_a_line_with_name_student_number_and_phone_comes_out_masked(json_log):
    log = structlog.get_logger()
    log.info(
        "student 赵小明 (2110216052) bound phone 13812345678",
        name="赵小明",
        student_number="2110216052",
        phone="13812345678",
        id_last4="2(3)",
        application_id="a1",
    )
    (line,) = json_log()
    raw = json.dumps(line, ensure_ascii=False)
    for secret in ("赵小明", "2110216052", "13812345678", "2(3)"):
        assert secret not in raw, f"{secret} leaked: {raw}"
    assert line["name"] == "赵**"
    assert line["student_number"] == "21******52"
    assert line["phone"] == "138****5678"
    assert line["id_last4"] == "****"
    assert "赵**" in line["event"] and "138****5678" in line["event"]
    assert line["application_id"] == "a1"  # ids stay readable: they identify nothing on their own
    assert line["service"] == "test"


def test_nested_structures_and_unlabelled_numbers_are_masked(json_log):
    log = structlog.get_logger()
    log.info(
        "claim",
        claim={"name": "欧阳娜娜", "student_number": "20190001"},
        note="call 18600001111 or id 420102199901011234",
    )
    (line,) = json_log()
    raw = json.dumps(line, ensure_ascii=False)
    assert "欧阳娜娜" not in raw and "20190001" not in raw
    assert "18600001111" not in raw and "420102199901011234" not in raw
    assert line["claim"]["name"] == "欧***"


def test_standard_library_loggers_are_redacted_too(json_log):
    import logging

    logging.getLogger("some.library").warning("failed for 13912345678")
    (line,) = json_log()
    assert "13912345678" not in json.dumps(line) and "139****5678" in line["event"]


def test_mask_text_leaves_short_numbers_and_ids_alone():
    assert mask_text("attempt 3 of 5, took 120 ms") == "attempt 3 of 5, took 120 ms"
    assert mask_text("event 6f1c2a7e-3b7d") == "event 6f1c2a7e-3b7d"


def test_processor_masks_secrets_by_key():
    out = redact_pii(None, "info", {"event": "x", "qr_text": "AAAA", "password": "p", "token": "t"})
    assert out["qr_text"] == out["password"] == out["token"] == "****"


def test_identifiers_stay_readable():
    out = redact_pii(
        None,
        "info",
        {
            "event": "x",
            "request_id": "f817167165b149618da58a8c50faceb1",
            "scan_id": "12345678-1234-4abc-8def-123456789012",
        },
    )
    assert out["request_id"] == "f817167165b149618da58a8c50faceb1"
    assert out["scan_id"] == "12345678-1234-4abc-8def-123456789012"
    assert mask_text("hash f817167165b1 ok") == "hash f817167165b1 ok"


@pytest.mark.parametrize(
    ("name", "masked"), [("赵小明", "赵**"), ("欧阳娜娜", "欧***"), ("李", "李*"), ("", "")]
)
def test_mask_name_never_shows_a_whole_name(name, masked):
    assert mask_name(name) == masked


def test_a_student_id_keeps_its_school_and_masks_its_number(json_log):
    # Student ids are `<school code>:<student number>`; a short number escapes the digit-run net.
    log = structlog.get_logger()
    log.info("photo for 10487:211021 checked (211021)", student_id="10487:211021", photo_id="p1")
    (line,) = json_log()
    raw = json.dumps(line, ensure_ascii=False)
    assert "211021" not in raw, raw
    assert line["student_id"] == "10487:21**21"
    assert line["photo_id"] == "p1"


OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"  # the shape of a real one: 28 characters


def test_exception_text_in_logs_is_not_redacted_names_inside_messages_and_openids(json_log):
    """Issue 13 item 10: an exception's message and traceback came out as raised, names and openids included."""
    log = structlog.get_logger()
    try:
        raise ValueError(f"cannot bind 赵小明 (欧阳·娜娜) to {OPENID}: phone 13812345678, number 2110216052")
    except ValueError as exc:
        log.exception("binding failed", error=str(exc))
    try:
        raise KeyError(OPENID)
    except KeyError:
        logging.getLogger("aiohttp.server").exception("Error handling request")  # a library's own line
    lines = json_log()
    raw = json.dumps(lines, ensure_ascii=False)
    for secret in ("赵小明", "小明", "欧阳", "娜娜", OPENID, "13812345678", "2110216052"):
        assert secret not in raw, f"{secret} leaked: {raw}"
    first, second = lines
    assert "ValueError: cannot bind 赵** (欧****) to oUpF****eS6o: phone 138****5678" in first["exception"]
    assert "oUpF****eS6o" in first["exception"] and "oUpF****eS6o" in first["error"]
    assert "赵**" in first["exception"] and "Traceback" in first["exception"]
    assert "oUpF****eS6o" in second["exception"] and second["event"] == "Error handling request"


def test_openid_values_are_masked_under_their_keys_and_anywhere_else(json_log):
    log = structlog.get_logger()
    log.info("session resolved", openid=OPENID, owner_openid="o-short", note=f"paid by {OPENID}", count=2)
    log.info("bound", payer_openid=OPENID, application_id="a1", school="示例大学")
    first, second = json_log()
    assert first["openid"] == "oUpF****eS6o" and first["owner_openid"] == "****"
    assert first["note"] == "paid by oUpF****eS6o" and first["count"] == 2
    assert second["payer_openid"] == "oUpF****eS6o" and second["application_id"] == "a1"
    assert second["school"] == "示例大学"  # labelled values that are not personal stay readable
