"""Figures, plots and the bench/RESULTS.md sections of a load run (from var/load/<name>/run.json)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.load.stack import WORKERS
from bench.results import write_section

if TYPE_CHECKING:
    from bench.load.audit import Outcome
    from bench.load.runner import LoadRun, Phase

PLOTS = Path(__file__).resolve().parent
# (name, from, to): the server's own clock (stored documents; "notified" is the sandbox's receipt of the
# subscribe message), and the whole journey on the student's clock.
STAGES = [
    ("upload→standardised", "uploaded", "standardized"),
    ("submit→matched", "submitted", "matched"),
    ("decision→notified", "decided", "notified"),
    ("whole journey", "started", "notified"),
]
# The same stages as the student sees them (their status polls: up to one poll interval later).
SEEN = [("upload→standardised", "uploading", "standardized"), ("submit→matched", "submitting", "matched")]
TARGETS = {"upload→standardised": 2.0, "submit→matched": 1.5}
BASELINE = PLOTS / "baseline.json"  # the figures of the code before issue 16, measured on this machine
FLAT_SLOPE = 0.1  # messages/s: a queue growing slower than this over a knee step counts as flat
EMPTY_DEPTH = 1  # ...as does one that falls back to this depth in the second half of the step


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second)."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var if var else 0.0


def step_series(
    samples: list[dict[str, Any]], start: float, end: float
) -> dict[str, list[tuple[float, float]]]:
    work: list[tuple[float, float]] = []
    outbox: list[tuple[float, float]] = []
    for s in samples:
        if not start <= s["t"] <= end:
            continue
        if s["queues"] is not None:
            work.append((s["t"], float(work_depth(s["queues"]))))
        if s["outbox_events"] is not None:
            outbox.append((s["t"], float(s["outbox_events"])))
    return {"work": work, "outbox": outbox}


def work_depth(queues: dict[str, Any]) -> int:
    consumers = ("gateway", *WORKERS)
    return sum(
        int(r) + int(u)
        for name, (r, u) in queues.items()
        if name.split(".")[0] in consumers and not name.endswith(".dead")
    )


def flat(run: LoadRun, phase: Phase) -> bool:
    """Did the queues and the outbox stay flat while students arrived at this step's rate?"""
    assert run.sampler is not None
    samples = [s.as_dict() for s in run.sampler.samples]
    share = sum(j.outcome == "done" for j in phase.journeys) / max(1, len(phase.journeys))
    verdict = step_verdict(samples, phase.started, phase.ended, share)
    return bool(verdict["flat"])


def step_verdict(
    samples: list[dict[str, Any]], start: float, end: float, completed_share: float
) -> dict[str, Any]:
    # The first fifth of a step is the system filling up to its working depth: left out of the trend.
    series = step_series(samples, start + (end - start) / 5, end)
    work, outbox = slope(series["work"]), slope(series["outbox"])
    peak = max((v for _, v in series["work"]), default=0.0)
    # A queue that grows without bound never empties again; one that keeps up does, between bursts
    # (the trend alone, over a minute of arrivals, is noisy).
    second_half = [v for t, v in series["work"] if t >= (start + end) / 2]
    empties = min(second_half, default=0.0) <= EMPTY_DEPTH
    is_flat = (work <= FLAT_SLOPE or empties) and outbox <= FLAT_SLOPE and completed_share >= 0.98
    return {
        "work_slope": work,
        "outbox_slope": outbox,
        "peak_depth": peak,
        "low_depth": min(second_half, default=0.0),
        "flat": is_flat,
    }


@dataclass
class Summary:
    text: str
    ok: bool
    figures: dict[str, Any]


def latencies(journeys: list[dict[str, Any]], times: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    out.update({f"{name} (seen by the student)": [] for name, _, _ in SEEN})
    out["imaging processing"], out["matching processing"] = [], []
    for j in journeys:
        at = {**times.get(j["openid"], {}), "started": j["started"]}
        for name, a, b in STAGES:
            if a in at and b in at and at[b] >= at[a]:
                out[name].append(at[b] - at[a])
        for name, a, b in SEEN:
            if a in j["at"] and b in j["at"]:
                out[f"{name} (seen by the student)"].append(j["at"][b] - j["at"][a])
        for name, key in (("imaging processing", "imaging_ms"), ("matching processing", "matching_ms")):
            if key in at:
                out[name].append(at[key] / 1000)
    return out


def throughput(
    journeys: list[dict[str, Any]], times: dict[str, dict[str, float]], start: float, end: float
) -> float:
    """Photos standardised per second while students arrived (the end-to-end photo rate)."""
    done = [
        times[j["openid"]]["standardized"] for j in journeys if "standardized" in times.get(j["openid"], {})
    ]
    inside = [t for t in done if start <= t <= end]
    return len(inside) / (end - start) if end > start else 0.0


def cpu_used(samples: list[dict[str, Any]], start: float, end: float) -> dict[str, float]:
    """CPU seconds each process used between start and end (a restarted process's new pid counts from 0)."""
    used: dict[str, float] = {}
    last: dict[str, tuple[int, float]] = {}
    for sample in samples:
        if sample["t"] > end:
            break
        for name, (pid, seconds) in (sample.get("cpu") or {}).items():
            if sample["t"] >= start and name in last:
                before_pid, before = last[name]
                used[name] = used.get(name, 0.0) + (seconds - before if pid == before_pid else seconds)
            last[name] = (pid, seconds)
    return used


# Messages each process handles per student journey (for the per-message cost).
MESSAGES = {"codec": 1, "imaging": 1, "matching": 1, "notify": 2}


def verdict_text(figures: dict[str, Any], per_student: dict[str, float]) -> str:
    """The target of issue 9 against what was measured, and where the CPU goes. With a knee search, at the
    knee (the highest flat step: its photos/s and p95s); without one, at the steady phase's rate."""
    p95 = figures["latency"]
    at_knee = [
        s for s in figures.get("knee_steps") or [] if s.get("flat") and s.get("rate") == figures.get("knee")
    ]
    if at_knee:
        step = at_knee[-1]
        photos_per_s, p95_std, p95_match = step["photos_per_s"], step["p95_std"], step["p95_match"]
    else:
        photos_per_s = figures["photos_per_s"]
        p95_std, p95_match = p95["upload→standardised"][95], p95["submit→matched"][95]
    met = (
        photos_per_s >= 3
        and p95_std <= TARGETS["upload→standardised"]
        and p95_match <= TARGETS["submit→matched"]
    )
    total = sum(per_student.values()) or 1.0
    ranked = sorted(per_student.items(), key=lambda kv: -kv[1])
    shares = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in ranked[:4])
    knee = figures.get("knee")
    cores = os.cpu_count() or 1
    return (
        f"**Target (≥ 3 photos/s end to end, p95 upload→standardised ≤ 2 s, submit→matched ≤ 1.5 s): "
        f"{'met' if met else 'not met'} on this machine"
        + (
            f" (at the knee: {photos_per_s:.2f} photos/s, p95 {p95_std:.2f} s and {p95_match:.2f} s)"
            if at_knee
            else ""
        )
        + ".** "
        + (f"The knee is {knee:g} arrivals/s. " if knee is not None else "")
        + f"A journey costs {total:.2f} CPU-seconds across all processes, so {cores} cores carry at most "
        f"{cores / total:.2f} journeys/s whatever the split; the CPU goes to {shares}. Each worker is one "
        "process on at most one core's worth of work: the profile below shows what a message costs."
    )


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def db_per_journey(phase: dict[str, Any], journeys: int) -> dict[str, dict[str, float]]:
    """{collection: {"read": n, "write": n}} per completed journey, all services together."""
    totals: dict[str, dict[str, float]] = {}
    before = phase.get("db_before") or {}
    for service, collections in (phase.get("db_after") or {}).items():
        for collection, ops in collections.items():
            earlier = (before.get(service) or {}).get(collection) or {}
            per = totals.setdefault(collection or "(server)", {"read": 0.0, "write": 0.0})
            for op in ("read", "write"):
                per[op] += (ops.get(op, 0.0) - earlier.get(op, 0.0)) / max(1, journeys)
    return {c: v for c, v in totals.items() if v["read"] or v["write"]}


def load_baseline(path: Path | None = None) -> dict[str, Any] | None:
    path = path or BASELINE
    if not path.exists():
        return None
    figures: dict[str, Any] = json.loads(path.read_text())
    return figures


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures `make load` ends with (issue 16.6), from a summary's figures."""
    per_student = figures.get("cpu_per_student_s") or {}
    cpu = sum(per_student.values())
    reference = figures.get("reference_unit_cpu_s")
    db = figures.get("db_per_journey") or {}
    return {
        "cpu_s_per_journey": round(cpu, 3),
        "knee_per_s": figures.get("knee"),
        "p95_submit_to_matched_s": _p95(figures),
        "reference_unit_cpu_s": reference,
        "journey_in_reference_units": round(cpu / reference, 2) if reference else None,
        "cpu_ms_per_student": {
            k: round(v * 1000) for k, v in sorted(per_student.items(), key=lambda kv: -kv[1])
        },
        "db_reads_per_journey": round(sum(v["read"] for v in db.values()), 1) if db else None,
        "db_writes_per_journey": round(sum(v["write"] for v in db.values()), 1) if db else None,
    }


def _p95(figures: dict[str, Any]) -> float | None:
    stage = (figures.get("latency") or {}).get("submit→matched") or {}
    value = stage.get(95, stage.get("95"))  # an int key in this run, a string one read back from JSON
    return round(float(value), 2) if value is not None else None


def final_lines(figures: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """`name: value (baseline: value, ratio)` lines: the last thing `make load` prints."""
    now = headline(figures)
    then = headline(baseline) if baseline else {}
    lines = []
    for key, value in now.items():
        if key == "cpu_ms_per_student":
            old = then.get(key) or {}
            parts = [
                f"{name}={ms}" + (f" (baseline {old[name]})" if name in old else "")
                for name, ms in value.items()
            ]
            lines.append(f"cpu_ms_per_student: {', '.join(parts)}")
            continue
        before = then.get(key)
        text = f"{key}: {value if value is not None else 'n/a'}"
        if baseline is not None:
            text += f" (baseline: {before if before is not None else 'n/a'}"
            if isinstance(value, (int, float)) and isinstance(before, (int, float)) and before:
                text += f", ratio {value / before:.2f}"
            text += ")"
        lines.append(text)
    return lines


def summarise(
    out: Path,
    outcome: Outcome,
    *,
    write: bool,
    faults: bool,
    profile: str = "",
    reference_unit_cpu_s: float | None = None,
    baseline: dict[str, Any] | None = None,
) -> Summary:
    run = json.loads((out / "run.json").read_text())
    decided: dict[str, float] = run["decided"]
    samples = run["samples"]
    steady = run["phases"][0]
    journeys = steady["journeys"]
    done = [j for j in journeys if j["outcome"] == "done"]
    lat = latencies(done, outcome.times)
    window = (steady["started"] + min(10.0, steady["duration_s"] / 4), steady["ended"])
    photos_per_s = throughput(journeys, outcome.times, *window)
    figures: dict[str, Any] = {
        "students": len(journeys),
        "completed": len(done),
        "rate": steady["rate"],
        "duration_s": steady["duration_s"],
        "photos_per_s": photos_per_s,
        "latency": {k: {q: percentile(v, q) for q in (50, 95, 99)} for k, v in lat.items()},
        "retries": sum(j["retries"] for j in journeys),
        "failed": [j["error"] for j in journeys if j["outcome"] != "done"][:5],
    }
    # CPU per student: the steady phase from its first arrival until its last student was notified.
    ends = [outcome.times.get(j["openid"], {}).get("notified", 0.0) for j in done]
    cpu_window = (steady["started"], max(ends, default=steady["ended"]))
    cpu = cpu_used(samples, *cpu_window)
    per_student = {name: seconds / max(1, len(done)) for name, seconds in cpu.items()}
    figures["cpu_per_student_s"] = per_student
    figures["reference_unit_cpu_s"] = reference_unit_cpu_s
    figures["db_per_journey"] = db = db_per_journey(steady, len(done))
    knee_rows = []
    knee = None
    for phase in run["phases"][1:]:
        share = sum(j["outcome"] == "done" for j in phase["journeys"]) / max(1, len(phase["journeys"]))
        verdict = step_verdict(samples, phase["started"], phase["ended"], share)
        p_lat = latencies([j for j in phase["journeys"] if j["outcome"] == "done"], outcome.times)
        knee_rows.append(
            {
                "rate": phase["rate"],
                **verdict,
                "photos_per_s": throughput(
                    phase["journeys"], outcome.times, phase["started"] + 10, phase["ended"]
                ),
                "p95_std": percentile(p_lat["upload→standardised"], 95),
                "p95_match": percentile(p_lat["submit→matched"], 95),
                "completed": share,
            }
        )
        if verdict["flat"] and (knee is None or phase["rate"] > knee):
            knee = phase["rate"]
        if not verdict["flat"]:
            break
    figures["knee"] = knee
    figures["knee_steps"] = knee_rows
    figures["faults"] = run["faults"]
    figures["restarts"] = run["restarts"]

    approved = sum(j["application_id"] in decided for j in journeys)
    lines = [
        f"Load run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(steady['started']))} on {machine()} "
        f"(load average {run.get('loadavg_at_start', [0.0])[0]:.1f} when it began): "
        f"{len(journeys)} students arriving at {steady['rate']:g}/s (Poisson) for "
        f"{steady['duration_s']:g} s, one replica of each worker, {approved} of them approved by the scripted "
        "reviewers.",
        "",
        f"- completed journeys: **{len(done)} / {len(journeys)}** (retries after a refused or failed call: {figures['retries']}; "
        f"photos retaken after a quality refusal: {sum(len(j.get('retakes', [])) for j in journeys)})",
        f"- photos standardised per second while students arrived: **{photos_per_s:.2f}**",
        "",
        "| stage | n | p50 s | p95 s | p99 s | target p95 |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in lat.items():
        p = figures["latency"][name]
        target = f"≤ {TARGETS[name]:g} s" if name in TARGETS else ""
        lines.append(f"| {name} | {len(values)} | {p[50]:.2f} | {p[95]:.2f} | {p[99]:.2f} | {target} |")
    total = sum(per_student.values()) or 1.0
    lines += [
        "",
        f"CPU per completed journey, each process of the run ({cpu_window[1] - cpu_window[0]:.0f} s from the first "
        f"arrival to the last notification; /proc, children included): {total:.2f} CPU-s per student in all, "
        f"i.e. at most {(os.cpu_count() or 1) / total:.2f} students/s on this machine's {os.cpu_count()} cores.",
        *(
            [
                "",
                f"Admission descriptors were stored after the roster import (`services.matching.cli precompute`, as "
                f"ops run it): {run['precompute_cpu_s']:.1f} CPU-s for the whole roster, once, before the students "
                "arrive; not in the figures below.",
            ]
            if run.get("precompute_cpu_s")
            else []
        ),
        "",
        "| process | CPU ms per student | share | messages per student | capacity per core |",
        "|---|---|---|---|---|",
    ]
    for name, seconds in sorted(per_student.items(), key=lambda kv: -kv[1]):
        count = MESSAGES.get(name)
        capacity = (
            f"{count / seconds:.1f} messages/s"
            if count and seconds > 0
            else (f"{1 / seconds:.1f} students/s" if seconds > 0 else "")
        )
        lines.append(
            f"| {name} | {seconds * 1000:.0f} | {seconds / total:.0%} | {count or ''} | {capacity} |"
        )
    if db:
        lines += [
            "",
            "Database commands per completed journey, by collection (every service's client counts them: "
            "`db_commands_total` on /metrics, shared/dbstats.py; the harness's own once-a-second outbox "
            "sample is not included):",
            "",
            "| collection | reads | writes |",
            "|---|---|---|",
        ]
        for collection, ops in sorted(db.items(), key=lambda kv: -(kv[1]["read"] + kv[1]["write"])):
            lines.append(f"| {collection} | {ops['read']:.1f} | {ops['write']:.1f} |")
        lines.append(
            f"| **all** | **{sum(v['read'] for v in db.values()):.1f}** | "
            f"**{sum(v['write'] for v in db.values()):.1f}** |"
        )
    if knee_rows:
        lines += [
            "",
            "Knee search: students arriving evenly at each rate in turn, each step drained before the next. A step "
            f"is flat when the work queues (ready + unacked, every consumer) either trend up by at most {FLAT_SLOPE} "
            f"messages/s (least squares, the first fifth of the step left out) or fall back to ≤ {EMPTY_DEPTH} in "
            f"its second half, the outbox trends up by at most {FLAT_SLOPE}/s, and ≥ 98% of its journeys complete.",
            "",
            "| arrivals/s | photos/s | queue trend msg/s | lowest depth, 2nd half | peak depth | outbox trend "
            "| p95 upload→std | p95 submit→matched | flat |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in knee_rows:
            lines.append(
                f"| {r['rate']:g} | {r['photos_per_s']:.2f} | {r['work_slope']:+.3f} | {r['low_depth']:.0f} | "
                f"{r['peak_depth']:.0f} | {r['outbox_slope']:+.3f} | {r['p95_std']:.2f} | {r['p95_match']:.2f} | "
                f"{'yes' if r['flat'] else 'no'} |"
            )
        lines += [
            "",
            f"**Knee: {knee:g} arrivals/s**" if knee is not None else "**Knee: below the first step**",
        ]
    if faults:
        lines += ["", "Faults (seconds until the piece answered again):", ""]
        for f in run["faults"]:
            back = f"back after {f['recovered_s'] or 0:.1f} s"
            error = f" (error {f['error']})" if f["error"] else ""
            lines.append(f"- {f['kind']} at {f['at_s']:.0f} s: {back}{error}")
    if not faults:
        lines += ["", verdict_text(figures, per_student)]
    lines += ["", outcome.table()]
    if profile:
        lines += ["", profile]
    if not faults:
        # Last (issue 16.6): the headline figures, each with the baseline's (bench/load/baseline.json).
        source = (baseline or {}).get("measured", "none recorded")
        lines += ["", f"Headline (baseline: {source}):", "", "```", *final_lines(figures, baseline), "```"]
    text = "\n".join(lines)
    ok = outcome.ok and len(done) == len(journeys)
    if write:
        plots(out, run, lat, knee_rows, prefix="faults-" if faults else "")
        images = ["faults-latency.png", "faults-queues.png"] if faults else ["latency.png", "queues.png"]
        if knee_rows:
            images.append("knee.png")
        body = text + "\n\n" + "\n".join(f"![{i}](load/{i})" for i in images)
        write_section("load-faults" if faults else "load", body)
    (out / "summary.json").write_text(json.dumps(figures, indent=1, default=str))
    return Summary(text, ok, figures)


def plots(
    out: Path, run: dict[str, Any], lat: dict[str, list[float]], knee_rows: list[dict[str, Any]], prefix: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (name, _, _) in zip(axes, STAGES[:3], strict=True):
        values = lat[name]
        ax.hist(values, bins=30, color="#4c72b0")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            if values:
                ax.axvline(percentile(values, q), color="k", linestyle=style, linewidth=1, label=f"p{q}")
        ax.set_yscale("log")  # the tail (a fault, a restart) stays visible beside the bulk
        ax.set_title(name)
        ax.set_xlabel("seconds")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("students")
    fig.tight_layout()
    fig.savefig(PLOTS / f"{prefix}latency.png", dpi=90)
    plt.close(fig)

    samples = run["samples"]
    t0 = run["phases"][0]["started"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 6), sharex=True)
    for consumer in ("gateway", *WORKERS):
        xs, ys = [], []
        for s in samples:
            if s["queues"] is not None:
                xs.append(s["t"] - t0)
                ys.append(
                    sum(r + u for n, (r, u) in s["queues"].items() if n in (consumer, f"{consumer}.retry"))
                )
        ax1.plot(xs, ys, label=consumer, linewidth=1)
    ax1.set_ylabel("queue depth (ready + unacked)")
    ax1.legend(fontsize=7, ncol=5)
    xs = [s["t"] - t0 for s in samples if s["outbox_events"] is not None]
    ys = [s["outbox_events"] for s in samples if s["outbox_events"] is not None]
    ax2.plot(xs, ys, color="#c44e52", linewidth=1)
    ax2.set_ylabel("outbox backlog (events)")
    ax2.set_xlabel("seconds since the first arrival")
    for phase in run["phases"]:
        for ax in (ax1, ax2):
            ax.axvspan(phase["started"] - t0, phase["ended"] - t0, color="#eeeeee", zorder=0)
    for f in run["faults"]:
        for ax in (ax1, ax2):
            ax.axvline(f["started"] - t0, color="#dd8452", linewidth=1)
        ax1.annotate(f["kind"], (f["started"] - t0, ax1.get_ylim()[1] * 0.9), fontsize=7, rotation=90)
    fig.tight_layout()
    fig.savefig(PLOTS / f"{prefix}queues.png", dpi=90)
    plt.close(fig)

    if knee_rows:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        rates = [r["rate"] for r in knee_rows]
        ax.plot(rates, [r["photos_per_s"] for r in knee_rows], "o-", label="photos standardised/s")
        ax.plot(rates, rates, ":", color="grey", label="arrivals/s")
        ax.set_xlabel("arrivals/s")
        ax.set_ylabel("per second")
        ax2b = ax.twinx()
        ax2b.plot(
            rates, [r["work_slope"] for r in knee_rows], "s--", color="#c44e52", label="queue trend (msg/s)"
        )
        ax2b.set_ylabel("queue trend, messages/s")
        ax.legend(loc="upper left", fontsize=7)
        ax2b.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        fig.savefig(PLOTS / "knee.png", dpi=90)
        plt.close(fig)


def profile() -> str:
    """Where the slowest stages' time goes (bench/load/profile.py)."""
    from bench.load.profile import profile_stages

    text: str = profile_stages()
    return text
