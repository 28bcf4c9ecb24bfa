"""The log scanner: a log written through shared.logging is clean; a leaky one is caught, kind by kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from shared.logging import configure_logging
from shared.logscan import Known, Scanner, main
from tests.conftest import ROOT

STUDENTS = [
    {"name": "赵小明", "student_number": "2110216052", "id_last4": "2(3)", "phone": "13812345678"},
    {"name": "欧阳娜娜", "student_number": "20190001", "id_last4": "123X", "phone": "+86 186-0000-1111"},
]
ID_NUMBER = "420102199901011234"


@pytest.fixture
def redacted_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    """What the services would write: personal data logged every way a careless caller might."""
    configure_logging(service="test", level="INFO", json_logs=True)
    log = structlog.get_logger("test")
    for student in STUDENTS:
        log.info(
            f"student {student['name']} ({student['student_number']}) bound phone {student['phone']}",
            name=student["name"],
            student_number=student["student_number"],
            id_last4=student["id_last4"],
            phone=student["phone"],
            application_id="a1b2c3d4e5f60718",
            bytes=10485760,
        )
        log.info("claim", claim={"name": student["name"], "student_number": student["student_number"]})
    log.info("free text", note=f"call 18600001111 or id {ID_NUMBER}", id_masked=f"****{ID_NUMBER[-4:]}")
    log.info("order created", out_trade_no="GP202611281200001234", amount_fen=3500, scan_id="20261128")
    path = tmp_path / "service.log"
    path.write_text(capsys.readouterr().err, encoding="utf-8")
    structlog.contextvars.clear_contextvars()
    return path


def known_file(tmp_path: Path) -> Path:
    path = tmp_path / "students.json"
    path.write_text(json.dumps([{**s, "id_number": ID_NUMBER} for s in STUDENTS], ensure_ascii=False))
    return path


def test_a_log_written_through_shared_logging_is_clean(redacted_log: Path, tmp_path: Path) -> None:
    text = redacted_log.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 6 and "赵**" in text  # the log really holds the masked events
    scanner = Scanner(Known.from_json(json.loads(known_file(tmp_path).read_text())))
    report = scanner.scan(text.splitlines())
    assert report.lines == 6
    assert report.clean, report.findings


def test_every_kind_of_leak_is_found_with_its_line_and_never_repeated(tmp_path: Path) -> None:
    known = Known.from_json(json.loads(known_file(tmp_path).read_text()))
    lines = [
        json.dumps({"event": "bound", "phone": "13812345678"}),  # 1 phone under its key
        json.dumps({"event": "call 13912345678 now"}),  # 2 phone in text (unknown number)
        json.dumps({"event": f"id {ID_NUMBER}"}),  # 3 ID number (known and by pattern)
        json.dumps({"event": "x", "id_last4": "1234"}),  # 4 ID fragment under its key
        json.dumps({"event": "x", "id_masked": "****123X"}),  # 5 masked number, fragment still there
        json.dumps({"event": "x", "student_number": "2110216052"}),  # 6 student number under its key
        json.dumps({"event": "x", "note": "学号 2110216052"}),  # 7 known student number in text
        json.dumps({"event": "赵小明 logged in"}, ensure_ascii=False),  # 8 known name
        "2026-11-28 INFO login name=欧阳娜娜 id_last4=123X phone=186-0000-1111",  # 9 console format
        json.dumps({"event": "x", "ref": "99887766554433"}),  # 10 unlabelled long digit run
        json.dumps({"event": "x", "student_number": 2110216052}),  # 11 a number, not a string
        json.dumps({"event": "x", "application_id": "20190001"}),  # 12 known number under an id key
        json.dumps({"event": "ok", "name": "赵**", "phone": "138****5678", "id_last4": "****"}),  # 13
        json.dumps({"event": "ok", "application_id": "0123456789abcdef", "bytes": 10485760}),  # 14
        "plain line with port 5672 and 2026-11-28T11:36:03Z",  # 15
        "2026-11-28 [info] http request application_id=72865893-d737-5187 request_id=12345678 ms=2.9",  # 16
        "2026-11-28 [info] x application_id=2110216052",  # 17 a known student number, even as an id
        json.dumps({"event": "x", "student_id": "10487:778899"}),  # 18 an unknown number in a student id
        json.dumps({"event": "ok", "student_id": "10487:77**99"}),  # 19 masked: clean
        "W0000 00:00:1795872946.202062 8077 calculator.cc:186] a native library's timestamp",  # 20 clean
    ]
    report = Scanner(known).scan(lines)
    by_line: dict[int, set[str]] = {}
    for finding in report.findings:
        by_line.setdefault(finding.line, set()).add(finding.kind)
    assert by_line == {
        1: {"phone"},
        2: {"phone"},
        3: {"id_number", "known_id"},
        4: {"id_fragment"},
        5: {"id_fragment"},
        6: {"student_number"},
        7: {"student_number"},
        8: {"name"},
        9: {"name", "id_fragment", "phone"},
        10: {"student_number"},
        11: {"student_number"},
        12: {"student_number"},
        17: {"student_number"},
        18: {"student_number"},
    }
    assert report.counts["phone"] == 3 and report.counts["name"] == 2
    shown = " ".join(f.masked for f in report.findings)
    for secret in ("13812345678", "13912345678", ID_NUMBER, "2110216052", "赵小明", "欧阳娜娜", "1234"):
        assert secret not in shown


def test_the_command_line_counts_and_exits_nonzero_only_on_findings(
    redacted_log: Path, tmp_path: Path
) -> None:
    known = known_file(tmp_path)
    leaky = tmp_path / "leaky.log"
    leaky.write_text('{"event": "x"}\n{"event": "phone 13812345678"}\n', encoding="utf-8")
    for args, code in (
        ([str(redacted_log), "--known", str(known)], 0),
        ([str(redacted_log), str(leaky), "--known", str(known)], 1),
        ([str(tmp_path / "missing.log")], 2),
        ([str(leaky), "--known", str(tmp_path / "missing.json")], 2),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "shared.logscan", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == code, proc.stdout + proc.stderr
        if code != 2:
            summary = json.loads(proc.stdout.splitlines()[-1])
            assert summary["ok"] is (code == 0)
            assert summary["lines"] == (6 if code == 0 else 8)
            assert summary["by_kind"]["phone"] == (0 if code == 0 else 1)
            assert "13812345678" not in proc.stdout
    # Found lines are named FILE:LINE with the masked value.
    assert main([str(leaky)]) == 1


def test_known_values_file_shapes_and_bad_input(tmp_path: Path) -> None:
    grouped = Known.from_json(
        {"names": ["赵小明", "x"], "student_numbers": ["2110216052", "12"], "phones": ["138 1234 5678"]}
    )
    assert grouped.names == {"赵小明"} and grouped.student_numbers == {"2110216052"}
    assert grouped.phones == {"13812345678"}
    assert Scanner(grouped).scan(["call 138 1234 5678"]).counts["known_phone"] == 1
    with pytest.raises(ValueError):
        Known.from_json("not a list")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), "--known", str(bad)]) == 2
