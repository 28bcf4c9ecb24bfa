"""Calibration: measured error rates and the threshold for a target false-accept rate."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

from services.matching.calibrate import rates, threshold_at_far
from tests.support import matching_faces as faces
from tests.unit.test_matching_cli import run_cli


def test_threshold_at_far_for_similarities_and_distances() -> None:
    impostor = [i / 1000 for i in range(1000)]  # 0.000 .. 0.999
    genuine = [0.5, 0.9, 0.95, 0.999]
    point = threshold_at_far(genuine, impostor, 1e-2, higher_is_better=True)
    assert point is not None
    assert point.far == 0.01 and 0.989 < point.threshold <= 0.990  # the ten most alike impostors pass
    assert point.frr == 0.75
    assert threshold_at_far(genuine, impostor, 1e-4, higher_is_better=True) is None  # too few impostors
    # Distances: lower is more alike, so the threshold sits just below the tenth-closest impostor.
    distance = threshold_at_far([0.005, 0.1], [1 - x for x in impostor], 1e-2, higher_is_better=False)
    assert distance is not None and distance.far == 0.01 and distance.frr == 0.5
    assert 0.010 < distance.threshold < 0.0111
    current = rates(genuine, impostor, 0.6, higher_is_better=True)
    assert current.far == 0.4 and current.frr == 0.25
    assert math.isnan(rates([], [], 0.5, higher_is_better=True).far)


def test_calibrate_command_on_labelled_pairs(tmp_path: Path) -> None:
    people = faces.people()
    rows = []
    for name, image in people.items():
        (tmp_path / f"{name}.jpg").write_bytes(faces.jpeg(image))
        (tmp_path / f"{name}-bright.jpg").write_bytes(faces.variants(image)["brightened 35 %"])
        rows.append((f"{name}.jpg", f"{name}-bright.jpg", 1))
    rows += [(f"{a}.jpg", f"{b}.jpg", 0) for a, b in itertools.combinations(people, 2)]
    rows.append(("group0.jpg", "missing.jpg", 0))
    pairs = tmp_path / "pairs.csv"
    with pairs.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_a", "image_b", "same"])
        writer.writerows(rows)
    code, [report], _ = run_cli("calibrate", str(pairs), "--far", "0.1", "0.0001")
    assert code == 0
    assert (report["engine"], report["genuine_pairs"], report["impostor_pairs"]) == ("dlib", 8, 28)
    assert report["photos_not_usable"] == {"missing": 1}
    assert report["pass_mark_setting"] == "MATCHING_DLIB_PASS_DISTANCE"
    assert report["at_pass_mark"]["far"] == 0.0 and report["at_pass_mark"]["frr"] == 0.0
    assert report["at_pass_mark"]["threshold"] == 0.6
    assert report["at_far"]["0.1"]["far"] <= 0.1
    assert report["at_far"]["0.0001"] == "needs at least 10000 impostor pairs"
