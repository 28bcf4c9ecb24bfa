"""Personal data never reaches a log line unmasked (handbook, non-negotiable 7)."""

from __future__ import annotations

import json

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
