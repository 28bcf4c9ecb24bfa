"""`make load` (`python -m bench.load`): simulated students through the whole journey, concurrently.

    make load STUDENTS=300 RATE=2 DURATION=120            # steady arrivals, then the knee search
    make load STUDENTS=300 RATE=1.5 DURATION=180 FAULTS=1 # with every fault once, then the audit

Prints and writes to bench/RESULTS.md (sections `load`, `load-faults`) completed journeys, sustained
photos/s, the latency of upload→standardised, submit→matched and decision→notified (p50/p95/p99), the
knee (the highest arrival rate at which the queues stay flat), and the PNG plots in bench/load/.
Everything it started is stopped at the end; its data stays in var/load/<name>/ for `python -m
bench.load.audit`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

from bench.load import audit, report
from bench.load.reference import reference_unit_cpu_s
from bench.load.runner import LoadRun, Phase, fault_plan
from bench.load.stack import LOAD_VAR, Ports, Stack, say


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=240, help="students in the roster (arrivals at most)")
    parser.add_argument("--rate", type=float, default=1.0, help="arrivals per second (Poisson)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals")
    parser.add_argument("--faults", action="store_true", help="inject every fault once, then audit")
    parser.add_argument("--knee", default="", help="comma-separated arrival rates to step through after")
    parser.add_argument("--knee-step", type=float, default=50.0, help="seconds per knee step")
    parser.add_argument("--poll", type=float, default=1.0, help="the student's status poll interval (s)")
    parser.add_argument(
        "--no-long-poll",
        action="store_true",
        help="students poll their status every --poll s instead of long-polling it (the pre-16.3 client)",
    )
    parser.add_argument(
        "--no-precompute",
        action="store_true",
        help="skip `services.matching.cli precompute` after the roster import (descriptors made at first use)",
    )
    parser.add_argument("--operators", type=int, default=2, help="scripted reviewers")
    parser.add_argument("--name", default="", help="var/load/<name> (default: run or faults)")
    parser.add_argument("--free-ports", action="store_true", help="any free ports (beside another run)")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md or the PNGs")
    parser.add_argument("--profile", action="store_true", help="profile the slowest stage afterwards")
    parser.add_argument(
        "--baseline",
        default="",
        help="figures to print beside this run's: a summary.json of another run (default bench/load/baseline.json)",
    )
    parser.add_argument(
        "--log-level",
        default="",
        help="services' LOG_LEVEL (default WARNING, INFO with --faults: the log scan then reads every line)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="SERVICE:NAME=VALUE", help="a setting for one service"
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    name = args.name or ("faults" if args.faults else "run")
    service_env: dict[str, dict[str, str]] = {}
    for item in args.env:
        service, _, setting = item.partition(":")
        key, _, value = setting.partition("=")
        service_env.setdefault(service, {})[key] = value
    # The fault run proves correctness, not speed: its services log every line at INFO, and the audit
    # scans all of them for unmasked personal data. The throughput runs keep WARNING (fewer lines, less CPU).
    log_level = args.log_level or ("INFO" if args.faults else "WARNING")
    stack = Stack(
        name=name,
        ports=Ports.free() if args.free_ports else Ports(),
        service_env=service_env,
        log_level=log_level,
    )
    out = LOAD_VAR / name
    knee_rates = [float(r) for r in args.knee.split(",") if r.strip()]
    knee_students = int(sum(r * args.knee_step + 1 for r in knee_rates))
    # No more roster than the arrivals can use (Poisson: 30% above the mean is never reached in practice).
    steady_students = min(args.students, int(args.rate * args.duration * 1.3) + 10)
    run = LoadRun(
        stack,
        out,
        poll_s=args.poll,
        long_poll=not args.no_long_poll,
        precompute=not args.no_precompute,
        operators=args.operators,
        step_timeout_s=300 if args.faults else 120,
    )
    phases: list[Phase] = []
    # The reference unit (bench/load/reference.py) before the stack starts and after it stops: the same
    # machine in the same state as the run, so a journey can be given in reference units.
    units = [await asyncio.to_thread(reference_unit_cpu_s)]
    try:
        await stack.start()
        await run.prepare(steady_students + knee_students, secrets.token_hex(2))
        await run.start()
        steady = Phase("steady", args.rate, args.duration, steady_students)
        phases.append(steady)
        injector = asyncio.create_task(run.inject(fault_plan(args.duration))) if args.faults else None
        await run.run_phase(steady)
        if injector is not None:
            await injector
        for rate in knee_rates:
            phase = Phase(f"knee@{rate:g}", rate, args.knee_step, int(rate * args.knee_step) + 1, even=True)
            phases.append(phase)
            await run.run_phase(phase)
            if not report.flat(run, phase):
                say(f"queues grew at {rate:g}/s: the knee is below it")
                break
        await asyncio.sleep(3)  # the last samples and messages
        await run.snapshot_sandbox()
        await run.stop()
        run.save(phases)
        outcome = await audit.audit(out, stack.mongo_url)
    finally:
        await run.stop()
        await stack.stop()
    units.append(await asyncio.to_thread(reference_unit_cpu_s))
    profile = report.profile() if args.profile else ""  # the stack is down: the CPU is the profile's
    baseline = report.load_baseline(Path(args.baseline) if args.baseline else None)
    summary = report.summarise(
        out,
        outcome,
        write=not args.no_results,
        faults=args.faults,
        profile=profile,
        reference_unit_cpu_s=round(sum(units) / len(units), 4),
        baseline=baseline,
    )
    print(summary.text, flush=True)
    return 0 if outcome.ok and summary.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(None))))
