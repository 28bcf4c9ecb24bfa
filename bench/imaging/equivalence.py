"""Check that a change to the imaging pipeline decides and produces the same as before, photo for photo.

Run: ``.venv/bin/python -m bench.imaging.equivalence corpus OUT/corpus.pkl`` once (the photos: the load
harness's student photos and retakes, the admission photo, the labelled sets of bench.imaging.sets, the
audit's portraits and violating photos, 2 MP and 12 MP phone photos, some as album uploads), then
``... run CORPUS OUT/old.pkl`` in each tree (e.g. ``git worktree add --detach /tmp/imaging-old main`` and
run there with ``PYTHONPATH=/tmp/imaging-old``), then ``... compare OUT/old.pkl OUT/new.pkl``: every photo
must give the same reasons, flags, measure codes, pass/advisory verdicts and geometry; raw values and
scores within ``--tolerance`` (default 0: equal); and the standardised JPEG equal byte for byte, else its
pixels within ``--max-grey`` grey levels (default 0). ``time CORPUS`` reports CPU ms per photo on the
load harness's photos (process time, OpenCV on one thread unless ``--threads``; ``--threads -1``:
OpenCV's default); ``profile CORPUS`` the cumulative cProfile time of each stage on them.
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Item = tuple[str, bytes, str]  # name, JPEG bytes, source


def build_corpus(n_load: int) -> list[Item]:
    from bench.imaging.__main__ import phone_photo
    from bench.imaging.audit import VIOLATIONS, bare_portraits
    from deploy.local import faces as local_faces
    from services.imaging.preprocess import FaceModels
    from tests.support import imaging_sets
    from tests.support.faces import jpeg

    items: list[Item] = [("admission", local_faces.admission_photo(), "camera")]
    for n in range(n_load):
        items.append((f"student-{n}", local_faces.student_photo(n), "camera"))
    for n in range(1, 9):
        for attempt in (1, 2):
            variant = n + 100_000 * attempt
            items.append((f"retake-{variant}", local_faces.student_photo(variant), "camera"))
    for n in range(1, 7):
        items.append((f"album-student-{n}", local_faces.student_photo(n), "album"))
    models = FaceModels()
    sets = {
        "headwear": imaging_sets.headwear_set(models),
        "residue": imaging_sets.residue_set(models),
        "recapture": imaging_sets.recapture_set(),
        "beautification": imaging_sets.beautification_set(models),
    }
    for set_name, photos in sets.items():
        for name, rgb, _ in photos:
            items.append((f"{set_name}-{name}", jpeg(rgb), "camera"))
    for name, rgb in bare_portraits(models):
        items.append((f"audit-{name}", jpeg(rgb), "camera"))
    for code, (derive, source) in VIOLATIONS.items():
        items.append((f"violation-{code}", jpeg(derive(models)), source))
    models.close()
    items.append(("phone-2MP", phone_photo(1600, 1200), "camera"))
    items.append(("phone-12MP", phone_photo(4000, 3000), "camera"))
    return items


def run(items: list[Item]) -> dict[str, dict[str, Any]]:
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import FaceModels

    models = FaceModels()
    standard = PhotoStandard()
    out: dict[str, dict[str, Any]] = {}
    for name, data, source in items:
        report = check_photo(data, models, standard=standard, source=source)  # type: ignore[arg-type]
        out[name] = {
            "ok": report.ok,
            "error": report.error,
            "reasons": report.reasons,
            "flags": report.flags,
            "measures": [
                (m.code, m.raw, m.score, m.passed, m.reason, m.threshold, m.advisory) for m in report.measures
            ],
            "geometry": report.geometry,
            "jpeg": report.jpeg,
        }
    return out


def _pixels(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.astype(np.int16)


def compare(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], tolerance: float, max_grey: int
) -> list[str]:
    problems: list[str] = []
    worst_raw = 0.0
    identical_jpegs = 0
    worst_grey = 0
    for name, a in old.items():
        b = new.get(name)
        if b is None:
            problems.append(f"{name}: missing in the new results")
            continue
        for key in ("ok", "error", "reasons", "flags", "geometry"):
            if a[key] != b[key]:
                problems.append(f"{name}: {key} {a[key]!r} != {b[key]!r}")
        ma, mb = a["measures"], b["measures"]
        if [m[:1] + m[3:] for m in ma] != [m[:1] + m[3:] for m in mb]:
            problems.append(f"{name}: verdicts differ: {ma} != {mb}")
        types_a = [tuple(map(type, m)) for m in ma] + [type(v) for v in (a["geometry"] or {}).values()]
        types_b = [tuple(map(type, m)) for m in mb] + [type(v) for v in (b["geometry"] or {}).values()]
        if types_a != types_b:
            problems.append(f"{name}: value types differ: {set(types_a) ^ set(types_b)}")
        for x, y in zip(ma, mb, strict=False):
            for i in (1, 2):
                if (x[i] is None) != (y[i] is None):
                    problems.append(f"{name}: {x[0]} value {x[i]} != {y[i]}")
                elif x[i] is not None:
                    diff = abs(x[i] - y[i])
                    worst_raw = max(worst_raw, diff)
                    if diff > tolerance:
                        problems.append(f"{name}: {x[0]} value {x[i]} != {y[i]}")
        if (a["jpeg"] is None) != (b["jpeg"] is None):
            problems.append(f"{name}: jpeg present {a['jpeg'] is not None} != {b['jpeg'] is not None}")
        elif a["jpeg"] is not None:
            if a["jpeg"] == b["jpeg"]:
                identical_jpegs += 1
            else:
                grey = int(np.abs(_pixels(a["jpeg"]) - _pixels(b["jpeg"])).max())
                worst_grey = max(worst_grey, grey)
                if grey > max_grey:
                    problems.append(f"{name}: JPEG pixels differ by up to {grey} grey levels")
    jpegs = sum(a["jpeg"] is not None for a in old.values())
    print(
        f"{len(old)} photos, {jpegs} standardised: {identical_jpegs} JPEGs byte-identical, "
        f"largest pixel difference {worst_grey}, largest raw/score difference {worst_raw:g}"
    )
    return problems


def timing(items: list[Item], threads: int) -> float:
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import FaceModels

    if threads >= 0:
        cv2.setNumThreads(threads)
    models = FaceModels()
    standard = PhotoStandard()
    load = [i for i in items if i[0].startswith(("student-", "retake-", "admission"))]
    for _, data, source in load[:2]:
        check_photo(data, models, standard=standard, source=source)  # type: ignore[arg-type]
    started = time.process_time()
    for _, data, source in load:
        check_photo(data, models, standard=standard, source=source)  # type: ignore[arg-type]
    return (time.process_time() - started) * 1000 / len(load)


# (stage, file the function is in, function): cumulative time of each in ``profile``.
STAGES = (
    ("whole check_photo", "pipeline", "check_photo"),
    ("decode", "load", "open_photo"),
    ("mediapipe's three graphs", "solution_base", "process"),
    ("analyse (models included)", "preprocess", "analyse"),
    ("recapture measure", "quality", "recapture"),
    ("placement", "standardize", "place"),
    ("render", "standardize", "render"),
    ("render: matte", "standardize", "_refine_alpha"),
    ("render: recolour", "standardize", "recolour"),
    ("render: residue search", "residue", "find_residue"),
    ("render: residue repair", "residue", "repair_residue"),
    ("Canvas.build", "quality", "build"),
    ("JPEG quality search", "standardize", "encode_jpeg"),
)


def profile(items: list[Item]) -> list[tuple[str, float]]:
    """cProfile of the load photos (OpenCV on one thread): cumulative ms per photo of each stage."""
    import cProfile
    import pstats

    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import FaceModels

    cv2.setNumThreads(1)
    models = FaceModels()
    standard = PhotoStandard()
    load = [i for i in items if i[0].startswith(("student-", "retake-", "admission"))]
    for _, data, _ in load[:2]:
        check_photo(data, models, standard=standard)
    profiler = cProfile.Profile()
    profiler.enable()
    for _, data, _ in load:
        check_photo(data, models, standard=standard)
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return [
        (stage, sum(v[3] for (f, _, fn), v in stats.items() if fn == name and where in f) * 1000 / len(load))
        for stage, where, name in STAGES
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.imaging.equivalence", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("out", type=Path)
    c.add_argument("--n-load", type=int, default=40)
    r = sub.add_parser("run")
    r.add_argument("corpus", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--threads", type=int, default=1)
    k = sub.add_parser("compare")
    k.add_argument("old", type=Path)
    k.add_argument("new", type=Path)
    k.add_argument("--tolerance", type=float, default=0.0)
    k.add_argument("--max-grey", type=int, default=0)
    t = sub.add_parser("time")
    t.add_argument("corpus", type=Path)
    t.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("profile")
    p.add_argument("corpus", type=Path)
    args = parser.parse_args()
    if args.command == "profile":
        for stage, ms in profile(pickle.loads(args.corpus.read_bytes())):
            print(f"{stage}\t{ms:.1f}")
        return 0
    if args.command == "corpus":
        args.out.write_bytes(pickle.dumps(build_corpus(args.n_load)))
        return 0
    if args.command == "run":
        if args.threads >= 0:
            cv2.setNumThreads(args.threads)
        items = pickle.loads(args.corpus.read_bytes())
        args.out.write_bytes(pickle.dumps(run(items)))
        return 0
    if args.command == "time":
        print(f"{timing(pickle.loads(args.corpus.read_bytes()), args.threads):.1f}")
        return 0
    problems = compare(
        pickle.loads(args.old.read_bytes()),
        pickle.loads(args.new.read_bytes()),
        args.tolerance,
        args.max_grey,
    )
    for line in problems[:50]:
        print(line)
    print(f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
