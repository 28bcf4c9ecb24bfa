"""The compare and check CLI, run as a subprocess exactly as support staff would run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import cli
from tests.support import matching_faces as faces


def run_cli(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    return cli.run_cli("services.matching.cli", *args)


def test_compare_prints_score_passed_engine_and_timings(tmp_path: Path) -> None:
    people = faces.people()
    same_a = tmp_path / "a.jpg"
    same_b = tmp_path / "b.jpg"
    other = tmp_path / "other.jpg"
    cat = tmp_path / "cat.jpg"
    same_a.write_bytes(faces.variants(people["group3"])["rotated 6 degrees"])
    same_b.write_bytes(faces.jpeg(people["group3"]))
    other.write_bytes(faces.jpeg(people["group4"]))
    cat.write_bytes(faces.jpeg(faces.no_face()))

    code, [result], _ = run_cli("compare", str(same_a), str(same_b))
    assert code == 0, result
    assert result["passed"] is True and result["score"] >= 80 and result["error"] is None
    assert result["engine"] == "dlib" and result["ms"] > 0
    assert result["faces"] == {"a": 1, "b": 1}
    assert {"detect", "embed"} <= set(result["timings_ms"])

    code, [result], _ = run_cli("compare", str(same_a), str(other))
    assert code == 1 and result["passed"] is False and result["score"] < 80

    code, [result], _ = run_cli("compare", str(same_a), str(other), "--pass-mark", "20")
    assert code == 0 and result["passed"] is True and result["pass_mark"] == 20

    code, [result], _ = run_cli("compare", str(cat), str(same_b))
    assert code == 2
    assert (result["error"], result["error_image"], result["score"]) == ("no_face", str(cat), None)

    code, [result], _ = run_cli("compare", str(same_a), str(tmp_path / "nowhere.jpg"))
    assert code == 2 and result["error"] == "unreadable_file"


def test_check_reports_each_admission_photo(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    two = tmp_path / "two.jpg"
    good.write_bytes(faces.jpeg(faces.people()["astronaut"]))
    two.write_bytes(faces.jpeg(faces.side_by_side(faces.people()["group0"], faces.people()["group5"])))
    code, lines, _ = run_cli("check", str(good), str(two))
    assert code == 1
    assert [(line["ok"], line["reason"], line["faces_found"]) for line in lines] == [
        (True, None, 1),
        (False, "multiple_faces", 2),
    ]
    assert lines[1]["message"]


def test_an_unusable_engine_configuration_is_a_clear_error(tmp_path: Path) -> None:
    a = tmp_path / "a.jpg"
    a.write_bytes(faces.jpeg(faces.people()["astronaut"]))
    code, lines, stderr = run_cli(
        "--engine", "insightface", "--model-dir", str(tmp_path), "compare", str(a), str(a)
    )
    assert code == 2 and not lines
    assert "no .onnx model" in stderr
