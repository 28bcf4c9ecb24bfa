"""deploy/local/faces.py: the bare-headed package face passes the real imaging checks and matches her
admission photo with the real matching service (both through their offline CLIs, as an operator would)."""

from __future__ import annotations

from pathlib import Path

from deploy.local.faces import admission_photo, bare_hopper, hopper_bgr, student_photo
from tests.support.cli import run_cli
from tests.support.faces import HOPPER_FAILS


def test_the_cap_is_gone_and_every_check_passes(tmp_path: Path) -> None:
    original = tmp_path / "original.jpg"
    original.write_bytes(admission_photo((720, 960)))
    photos = [tmp_path / f"student-{n}.jpg" for n in (0, 7)]
    for n, path in zip((0, 7), photos, strict=True):
        path.write_bytes(student_photo(n))
    code, (report,), _ = run_cli("services.imaging.cli", "check", str(original))
    assert report["ok"] is False and report["reasons"] == HOPPER_FAILS  # the source still wears the cap
    for path in photos:
        code, (report,), _ = run_cli("services.imaging.cli", "check", str(path))
        assert code == 0 and report["ok"] is True and report["reasons"] == [], report["reasons"]
        assert next(c for c in report["checks"] if c["name"] == "headwear")["passed"] is True


def test_variants_differ_in_bytes_but_not_in_face(tmp_path: Path) -> None:
    variants = {student_photo(n) for n in range(6)}
    assert len(variants) == 6
    assert student_photo(3) == student_photo(3)  # deterministic per student
    # Only the cap changed: the face below the brim is the original's, pixel for pixel.
    assert (bare_hopper()[200:] == hopper_bgr()[200:]).all()
    assert (bare_hopper()[:160, 160:370] != hopper_bgr()[:160, 160:370]).any()
    admission = tmp_path / "admission.jpg"
    admission.write_bytes(admission_photo())
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(student_photo(5))
    code, (result,), _ = run_cli("services.matching.cli", "compare", str(photo), str(admission))
    assert code == 0 and result["passed"] is True and result["score"] >= 80, result
