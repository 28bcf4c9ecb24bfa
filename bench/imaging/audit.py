"""False-refusal audit of every imaging measure: bare compliant-looking portraits and one violating variant each.

Run: ``.venv/bin/python -m bench.imaging.audit [--no-write]``. For each measure: how often it refuses or
flags the bare package portraits (phone-framed, relit, recoloured hair: none wears anything on the head;
see the notes for what some of them really break), and what it does on a photo that breaks its rule
(refused, flagged for the review, or missed). The table goes to ``bench/RESULTS.md`` between the
``bench-imaging-audit`` markers and is copied into docs/imaging.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from bench.results import write_section
from deploy.local import faces as local_faces
from services.imaging.config import PhotoStandard
from services.imaging.pipeline import Report, check_photo
from services.imaging.preprocess import FaceModels, ModelPool
from services.imaging.quality import ALBUM_MEASURES, ANALYSIS_MEASURES, CANVAS_MEASURES
from tests.support import faces, imaging_sets
from tests.support.faces import jpeg

# The clause of 教毕指[2017]99号 or of the seed each measure implements (config.py has the detail).
CLAUSES = {
    "face_count": "单人 (one person)",
    "face_resolution": "清晰 (ours: ≤ 1.5× enlargement)",
    "head_yaw": "头部端正, 不得侧转",
    "head_pitch": "不得仰头、低头",
    "head_roll": "头部端正 (corrected below the limit)",
    "eyes_open": "双眼自然睁开",
    "mouth_closed": "嘴巴自然闭合, 表情自然",
    "recapture": "seed: 不得使用任何翻拍的照片",
    "placement": "人像位置 (head top, eyes, face width)",
    "head_in_frame": "头部完整",
    "body_in_frame": "人像完整 (shoulders)",
    "head_top": "头顶 50-110 px",
    "eye_line": "双眼 200-300 px",
    "face_width": "脸宽 180-300 px",
    "face_centred": "头部居中",
    "shoulders_level": "双肩水平",
    "ears_visible": "双耳对称露出",
    "eyebrows_visible": "头发不得遮挡眉毛、眼睛",
    "headwear": "免冠",
    "glasses_tint": "不得佩戴有色眼镜",
    "glasses_glare": "镜片不得反光",
    "illumination_balance": "光线均匀, 不得有阴阳脸",
    "face_brightness": "曝光正常",
    "overexposure": "不得过曝",
    "sharpness": "清晰",
    "colour_photo": "24 位彩色",
    "clothing_contrast": "服装颜色与背景色有明显区别",
    "background_residue": "背景 无杂物 (抠图残留)",
    "beautification": "seed: 照片未经美颜处理",
    "background_colour": "seed: 浅蓝色背景 (album)",
    "background_uniformity": "背景均匀 (album)",
}

Derive = Callable[[FaceModels], np.ndarray]


def _hopper(fn: Callable[..., np.ndarray]) -> Derive:
    return lambda m: fn(faces.hopper(), faces.hopper_analysis(m))


def _astronaut(models: FaceModels, fn: Callable[..., np.ndarray]) -> np.ndarray:
    rgb = imaging_sets.astronaut_phone()
    return fn(rgb, imaging_sets._analysis(models, rgb))


# One photo that breaks each rule (code → (derive, source)). Geometry on the canvas is set by the
# placement itself: its measures have no photo that breaks them and are audited by placement.
VIOLATIONS: dict[str, tuple[Derive, str]] = {
    "face_count": (lambda m: faces.two_faces(faces.hopper()), "camera"),
    "face_resolution": (lambda m: faces.astronaut(), "camera"),
    "head_yaw": (lambda m: faces.group_faces()[1], "camera"),
    "head_pitch": (lambda m: faces.group_faces()[1], "camera"),
    "head_roll": (lambda m: faces.rotated(faces.hopper(), 35), "camera"),
    "eyes_open": (lambda m: faces.group_faces()[0], "camera"),
    "mouth_closed": (lambda m: faces.group_faces()[1], "camera"),
    "recapture": (lambda m: imaging_sets.on_screen(faces.hopper(), pitch=3), "camera"),
    "placement": (lambda m: faces.group_faces()[2], "camera"),
    "head_in_frame": (_hopper(faces.head_cut_at_top), "camera"),
    "body_in_frame": (_hopper(faces.body_cut_below_chin), "camera"),
    "shoulders_level": (lambda m: faces.astronaut(), "camera"),  # her body turned: the line tilts 10°
    "ears_visible": (_hopper(faces.ear_painted_over), "camera"),
    "eyebrows_visible": (_hopper(faces.fringe_over_brows), "camera"),
    "headwear": (lambda m: faces.hopper(), "camera"),
    "glasses_tint": (_hopper(faces.tinted_glasses), "camera"),
    "glasses_glare": (_hopper(faces.glasses_glare), "camera"),
    "illumination_balance": (lambda m: faces.darkened_one_side(faces.hopper()), "camera"),
    "face_brightness": (lambda m: faces.darkened(faces.hopper()), "camera"),
    "overexposure": (lambda m: faces.over_exposed(faces.hopper()), "camera"),
    "sharpness": (lambda m: faces.blurred(faces.hopper()), "camera"),
    "colour_photo": (lambda m: faces.greyscale(faces.hopper()), "camera"),
    "clothing_contrast": (_hopper(faces.clothes_like_background), "camera"),
    "background_residue": (lambda m: faces.hopper(), "camera"),
    "beautification": (
        lambda m: _astronaut(m, lambda rgb, a: imaging_sets.smoothed_skin(rgb, a, 4)),
        "camera",
    ),
    "background_colour": (lambda m: faces.hopper(), "album"),
    "background_uniformity": (lambda m: faces.hopper(), "album"),
}


def bare_portraits(models: FaceModels) -> list[tuple[str, np.ndarray]]:
    """Bare-headed package portraits as phone photos: the demo variants, the group faces, recoloured hair."""
    photos: list[tuple[str, np.ndarray]] = []
    for n in range(6):
        rgb = faces.decode(local_faces.student_photo(n))
        photos.append((f"astronaut-v{n}", rgb))
    for name in ("group0", "group2", "group3", "group5"):
        photos.append((name, imaging_sets.BARE_SOURCES[name]()))
    rgb = imaging_sets.astronaut_phone()
    a = imaging_sets._analysis(models, rgb)
    for colour in imaging_sets.HAIR_COLOURS:
        photos.append((f"astronaut-hair-{colour}", imaging_sets.recoloured_hair(rgb, a, colour)))
    return photos


def verdict(report: Report, code: str) -> str:
    found = [m for m in report.measures if m.code == code]
    if not found:
        return "not measured"
    m = found[0]
    return "passed" if m.passed else ("flagged" if m.advisory else "refused")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.imaging.audit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    pool = ModelPool(1)
    standard = PhotoStandard()
    codes = ["face_count"] + [f.__name__ for f in ANALYSIS_MEASURES] + ["placement"]
    codes += [f.__name__ for f in CANVAS_MEASURES + ALBUM_MEASURES]
    bare_counts = {code: {"refused": 0, "flagged": 0, "n": 0, "who": []} for code in codes}
    violating: dict[str, str] = {}
    with pool.borrow() as models:
        photos = bare_portraits(models)
        for name, rgb in photos:
            report = check_photo(jpeg(rgb), models, standard=standard)
            for code in codes:
                v = verdict(report, code)
                if v == "not measured":
                    continue
                counts = bare_counts[code]
                counts["n"] += 1  # type: ignore[operator]
                if v in ("refused", "flagged"):
                    counts[v] += 1  # type: ignore[operator]
                    counts["who"].append(f"{name}:{v[0]}")  # type: ignore[union-attr]
            if "placement" in report.reasons:
                bare_counts["placement"]["refused"] += 1  # type: ignore[operator]
            bare_counts["placement"]["n"] += 1  # type: ignore[operator]
        for code, (derive, source) in VIOLATIONS.items():
            report = check_photo(jpeg(derive(models)), models, standard=standard, source=source)  # type: ignore[arg-type]
            v = verdict(report, code)
            if code == "placement":
                v = "refused" if "head_proportions" in report.reasons else "missed"
            violating[code] = "missed" if v == "passed" else v
    lines = [
        "## Imaging: false-refusal audit of every measure (`python -m bench.imaging.audit`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(photos)} bare-headed package portraits "
        "(the demo's 6 phone variants of the astronaut, 4 faces of insightface's group photo as portraits, "
        "the astronaut with her hair recoloured 6 ways); one violating photo per measure",
        "- refused / flagged: how many of the bare portraits the measure refuses or sends to the review "
        "flagged (a false alarm unless the note says the portrait really breaks the rule)",
        "",
        "| measure | clause | bare: refused | bare: flagged | violating photo | who |",
        "|---|---|---:|---:|---|---|",
    ]
    for code in codes:
        c = bare_counts[code]
        who = ", ".join(c["who"][:6]) + (" …" if len(c["who"]) > 6 else "")  # type: ignore[arg-type,index]
        lines.append(
            f"| `{code}` | {CLAUSES.get(code, '')} | {c['refused']}/{c['n']} | {c['flagged']}/{c['n']} | "
            f"{violating.get(code, 'set by the placement')} | {who} |"
        )
    section = "\n".join(lines)
    sys.stdout.write(section + "\n")
    if not args.no_write:
        write_section("imaging-audit", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
