"""Time the standardisation of 12 MP and 2 MP phone JPEGs against ``cv2.imread`` of the same file.

Run: ``.venv/bin/python -m bench.imaging [--n 15] [--no-write]``. The process is pinned to one core
(and OpenCV to one thread); for each file, ``cv2.imread`` and the whole pipeline (load, detect, mesh,
segment, place, matte, recolour, residue repair, measure, encode) alternate, so both see the same
machine. Times are process CPU time. The ratio is median pipeline / median imread. Peak RSS is the
process's high-water mark with as many model sets as a worker on this machine loads (one per core).
Results go to ``bench/RESULTS.md`` between the ``bench-imaging`` markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from bench.results import pin_to_one_core, write_section
from services.imaging.config import ImagingSettings, PhotoStandard
from services.imaging.pipeline import check_photo
from services.imaging.preprocess import ModelPool

OUT = Path(__file__).resolve().parents[1] / "out"
TARGET_RATIO = 1.5
TARGET_RSS_MB = 1024
SIZES = {"12MP": (4000, 3000), "2MP": (1600, 1200)}


def phone_photo(width: int, height: int, seed: int = 7) -> bytes:
    """A phone-like JPEG: a portrait standing in a textured room, sensor noise, quality 92.

    The person is Grace Hopper's portrait (matplotlib's sample) enlarged so the face spans about a
    fifth of the frame's height, as when someone else takes the photo from about a metre away.
    """
    rng = np.random.default_rng(seed)
    portrait = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 140 + 40 * np.sin(xx / (width / 6)) + 30 * np.cos(yy / (height / 6))
    scene = np.dstack([wall * 0.9, wall, wall * 1.1])
    texture = cv2.GaussianBlur(rng.normal(0, 25, (height // 4, width // 4, 3)).astype(np.float32), (0, 0), 3)
    scene += cv2.resize(texture, (width, height))
    assert portrait is not None
    k = 0.92 * height / portrait.shape[0]
    person = cv2.resize(
        portrait, (round(portrait.shape[1] * k), round(portrait.shape[0] * k)), interpolation=cv2.INTER_CUBIC
    )
    ph, pw = person.shape[:2]
    x0 = (width - pw) // 2
    scene[height - ph :, x0 : x0 + pw] = person
    scene += rng.normal(0, 5, scene.shape)
    ok, buf = cv2.imencode(".jpg", np.clip(scene, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def load_photo(name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"imaging-{name}.jpg"
    if not path.exists():
        path.write_bytes(phone_photo(*SIZES[name]))
    return path


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def run(n: int, model_sets: int) -> dict[str, dict[str, float]]:
    pool = ModelPool(model_sets)
    standard = PhotoStandard()
    results: dict[str, dict[str, float]] = {}
    with pool.borrow() as models:
        for name in SIZES:
            path = load_photo(name)
            data = path.read_bytes()
            check_photo(data, models, standard=standard)  # warm caches
            cv2.imread(str(path))
            floor, ours = [], []
            verdict = None
            for _ in range(n):
                # Process CPU time (all threads): the machine is shared, so wall time measures the others.
                start = time.process_time()
                cv2.imread(str(path))
                floor.append((time.process_time() - start) * 1000)
                start = time.process_time()
                # The file is read inside the timed region, as imread reads it.
                verdict = check_photo(path.read_bytes(), models, standard=standard)
                ours.append((time.process_time() - start) * 1000)
            # Every rule is judged; Grace Hopper's cap fails the headwear rule (and only that refuses).
            assert verdict is not None and verdict.reasons == ["headwear"], verdict and verdict.reasons
            results[name] = {
                "bytes": len(data),
                "imread_median": statistics.median(floor),
                "imread_p95": p95(floor),
                "median": statistics.median(ours),
                "p95": p95(ours),
                "ratio": statistics.median(ours) / statistics.median(floor),
                "out_bytes": verdict.geometry["bytes"] if verdict.geometry else 0,
            }
    results["rss"] = {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models": pool.size,
    }
    return results


def report(results: dict[str, dict[str, float]], n: int, load: tuple[float, float]) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        "## Imaging: standardisation time (`python -m bench.imaging`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: pinned to 1 of {os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}",
        f"- libraries: mediapipe {metadata.version('mediapipe')}, opencv-python-headless "
        f"{metadata.version('opencv-python-headless')}, numpy {metadata.version('numpy')}, "
        f"pillow {metadata.version('pillow')}",
        f"- n = {n} runs per file, alternating with `cv2.imread` of the same file; times in ms of process "
        "CPU time (all threads; the machine is shared with other busy processes, so wall time is not used)",
        f"- load average (1 min) at the start {load[0]:.2f}, at the end {load[1]:.2f}, on {os.cpu_count()} CPUs",
        "",
        "| photo | file | cv2.imread median | p95 | standardise median | p95 | ratio (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SIZES:
        r = results[name]
        lines.append(
            f"| {name} ({'×'.join(map(str, SIZES[name]))}) | {r['bytes'] / 1e6:.1f} MB | {r['imread_median']:.1f} | "
            f"{r['imread_p95']:.1f} | {r['median']:.1f} | {r['p95']:.1f} | {r['ratio']:.2f} |"
        )
    rss = results["rss"]
    big = results["12MP"]["ratio"]
    lines += [
        "",
        f"Peak RSS of the process with {int(rss['models'])} model sets (one per core, as the worker): "
        f"{rss['peak_mb']:.0f} MB.",
        "",
        "Targets:",
        "",
        f"- [{'x' if big <= TARGET_RATIO else ' '}] 12 MP: standardise ≤ {TARGET_RATIO} × cv2.imread: ratio {big:.2f}",
        f"- [{'x' if rss['peak_mb'] < TARGET_RSS_MB else ' '}] worker peak RSS < 1 GB: {rss['peak_mb']:.0f} MB",
        "",
        "Notes:",
        "",
        "- The 12 MP file is decoded once, at 1/4 scale (1000×750) by libjpeg's DCT scaling (Pillow draft",
        "  mode): the face (~210 px there) is placed without enlarging; a face too small at that scale is",
        "  decoded again finer. Most of the decode is entropy decoding, which no scale avoids: 1/4 costs",
        "  ~50% of a full decode, 1/2 ~60%. Detection runs on a ≤640 px copy, the face mesh on a 320 px",
        "  crop, segmentation on a 256×384 window; the matte samples colours on a 120×160 grid and runs",
        "  a fast guided filter (120×160 coefficients, 240×320 edges); only the edge band is recoloured;",
        "  the JPEG quality search takes 3-4 encodes.",
        f"- At 2 MP the floor is a {results['2MP']['imread_median']:.0f} ms decode, and the three models",
        "  alone cost more than that: the ratio there is high by nature and has no target.",
        "- Timing noise: other processes shared the machine; both columns were measured interleaved.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imaging", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    # As many model sets as the worker loads here (one per core), before pinning to a single core.
    model_sets = ImagingSettings().bus_prefetch
    pin_to_one_core()
    cv2.setNumThreads(1)
    load_start = os.getloadavg()[0]
    results = run(args.n, model_sets)
    section = report(results, args.n, (load_start, os.getloadavg()[0]))
    sys.stdout.write(section + "\n")
    if not args.no_write:
        write_section("imaging", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
