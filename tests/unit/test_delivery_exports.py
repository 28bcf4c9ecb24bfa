"""Delivery's pure parts: naming templates, the CHSI photo check, CSV cells, and that they agree with imaging."""

from __future__ import annotations

import io
import typing

import pytest
from PIL import Image

from services.gateway.console.exports import CHSI_MAX_BYTES, CHSI_SIZE, csv_bytes, photo_problem
from services.gateway.schools import PrintSizeName, check_chsi_file_name
from services.imaging.config import PhotoStandard
from shared.print_sheet import PRINT_SIZES


def jpeg(size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (100, 197, 255)).save(out, format=fmt)
    return out.getvalue()


def test_the_check_matches_what_imaging_writes_and_print_sizes_match_the_sheet_module():
    standard = PhotoStandard()
    assert (standard.width_px, standard.height_px) == CHSI_SIZE
    assert standard.file_max_bytes == CHSI_MAX_BYTES
    assert set(typing.get_args(PrintSizeName)) == set(PRINT_SIZES)


@pytest.mark.parametrize(
    "template",
    [
        "{student_number}.jpg",
        "{school_code}_{student_number}.jpg",
        "{graduation_year}-{student_number}_x.jpg",
    ],
)
def test_valid_templates(template):
    assert check_chsi_file_name(template) == template


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("../{student_number}.jpg", "text outside"),
        ("a/{student_number}.jpg", "text outside"),
        ("C:{student_number}.jpg", "text outside"),
        ("{id_last4}.jpg", "unknown field"),
        ("{name}.jpg", "unknown field"),
        ("{student_number.__class__}.jpg", "unknown field"),
        ("{student_number[0]}.jpg", "unknown field"),
        ("{student_number!r}.jpg", "unknown field"),
        ("{student_number:>9}.jpg", "unknown field"),
        ("{0}.jpg", "unknown field"),
        ("{student_number.jpg", "not a valid template"),
        ("{school_code}.jpg", "must contain"),
        ("{student_number}.JPG", "must end"),
        ("{student_number}", "must end"),
        ("{student_number}" + "x" * 100 + ".jpg", "must end"),
        ("学号{student_number}.jpg", "text outside"),
    ],
)
def test_hostile_templates_are_refused_with_a_reason(template, why):
    with pytest.raises(ValueError, match=why):
        check_chsi_file_name(template)


def test_photo_problem():
    assert photo_problem(jpeg((480, 640))) is None
    assert photo_problem(jpeg((640, 480))).startswith("photo_wrong_size")
    assert photo_problem(jpeg((480, 640), "PNG")).startswith("photo_not_jpeg")
    assert photo_problem(jpeg((480, 640))[:300]) == "photo_unreadable"
    assert photo_problem(b"") == "photo_unreadable"
    assert photo_problem(b"\xff\xd8" + b"\0" * CHSI_MAX_BYTES).startswith("photo_too_large")


def test_csv_is_utf8_with_bom_and_never_a_formula():
    data = csv_bytes(("name", "n"), [("=1+1", 1), ("+x", None), ("-2", "a"), ("@f", "\tq"), ("赵小明", "ok")])
    text = data.decode("utf-8")
    assert text.startswith("\ufeffname,n\r\n")
    assert text.splitlines()[1:] == ["'=1+1,1", "'+x,", "'-2,a", "'@f,'\tq", "赵小明,ok"]
