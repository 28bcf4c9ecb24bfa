"""deploy/local/faces.py: the demo and load photos are a package portrait, undoctored, that passes the real
imaging checks (only the reviewer's advisory flags) and matches its admission photo with the real
matching service (both through their offline CLIs, as an operator would)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deploy.local.faces import FACE_CX, FACE_CY, _phone_frame, admission_photo, astronaut_bgr, student_photo
from tests.support.cli import run_cli

# What the standard leaves to the reviewer for her: a smile, hair at the ears, a body turned a little.
ASTRONAUT_FLAGS = {"mouth_open", "ears_covered", "shoulders_tilted"}


def test_the_demo_photo_passes_every_check_without_a_retouch(tmp_path: Path) -> None:
    photos = [tmp_path / f"student-{n}.jpg" for n in (0, 3, 7)]
    for n, path in zip((0, 3, 7), photos, strict=True):
        path.write_bytes(student_photo(n))
    for path in photos:
        code, (report,), _ = run_cli("services.imaging.cli", "check", str(path))
        assert code == 0 and report["ok"] is True and report["reasons"] == [], report["reasons"]
        assert set(report["flags"]) <= ASTRONAUT_FLAGS, report["flags"]
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["headwear"]["passed"] is True
        assert all(c["passed"] or c["advisory"] for c in checks.values())


def test_the_photo_is_the_package_portrait_resampled_not_repainted() -> None:
    """Variant 0 is a plain resampling of astronaut.png: shrunk back, it is the source within JPEG noise."""
    frame = _phone_frame(384.0, (720, 960))
    back = cv2.resize(frame, (384, 512), interpolation=cv2.INTER_AREA).astype(np.float32)
    x0 = FACE_CX - 192
    source = astronaut_bgr()[:512, x0 : x0 + 384].astype(np.float32)
    assert np.abs(back - source).mean() < 3.0
    decoded = cv2.imdecode(np.frombuffer(student_photo(0), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (960, 720, 3)
    assert FACE_CY < 512


def test_variants_differ_in_bytes_but_not_in_face(tmp_path: Path) -> None:
    variants = {student_photo(n) for n in range(6)}
    assert len(variants) == 6
    assert student_photo(3) == student_photo(3)  # deterministic per student
    admission = tmp_path / "admission.jpg"
    admission.write_bytes(admission_photo())
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(student_photo(5))
    code, (result,), _ = run_cli("services.matching.cli", "compare", str(photo), str(admission))
    assert code == 0 and result["passed"] is True and result["score"] >= 80, result
