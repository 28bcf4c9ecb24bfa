"""`python -m bench.load.audit [NAME]`: after a load run, check every simulated student.

Reads what the run left in var/load/<NAME>/ (run.json: each student's accepted inputs, the operator's
decisions, the last queue sample; sandbox.json: what WeChat and WeChat Pay recorded) and the run's
database (its nx-27017 is started again on the kept data directory when it is not running). For each
student:

- **state**: the application is in the state its inputs deserve (code → `code_verified`, confirm →
  `confirmed`, pay → `paid`, a submitted photo → `in_review`, approved by the operator → `approved`);
- **lost**: an input accepted but nothing came of it: events still in the outbox (`outbox_pending > 0`),
  the application behind its inputs (a photo still `processing`, a submission not compared, a decision
  without the subscribe message), or a message parked in a `.dead` queue;
- **stuck**: still in a transitional state (`code_submitted`, `submitted`, a photo `processing`) when the
  run ended (after its drain wait: the grace period);
- **duplicated**: two successful charges (WeChat Pay orders paid, `payment_notifications` applied),
  two subscribe messages for one event (per openid and template in the sandbox, per application and
  kind in `notifications`), or the quota counting more standardisations than the photos uploaded.

Prints the table and exits 1 when anything is not 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.load.journey import REVIEW_TEMPLATE, Person
from bench.load.stack import LOAD_VAR
from bench.net import free_port
from deploy.local import run as local
from shared.logscan import Known, Scanner

TRANSITIONAL = {"code_submitted", "submitted"}
ORDER = ["code_verified", "confirmed", "paid", "in_review", "approved"]


@dataclass
class Finding:
    index: int
    kind: str  # lost, stuck, duplicated, wrong_state
    what: str


def epoch(value: Any) -> float | None:
    """A stored time as epoch seconds: nx-27017 gives naive UTC datetimes, or text for some writes."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def stored_times(
    app: dict[str, Any], photo: dict[str, Any] | None, match: dict[str, Any] | None
) -> dict[str, float]:
    """The server's own clock for each stage (the student's polling adds up to one poll interval)."""
    times: dict[str, float | None] = {}
    submission = app.get("submission") or {}
    photo_id = submission.get("photo_id") or next(iter(app.get("photos") or {}), None)
    entry = (app.get("photos") or {}).get(photo_id) or {}
    times["uploaded"] = epoch(entry.get("uploaded_at"))
    times["standardized"] = epoch(entry.get("decided_at"))  # the gateway applied imaging's result
    times["imaging_done"] = epoch((photo or {}).get("decided_at"))
    times["imaging_ms"] = (photo or {}).get("ms")
    times["submitted"] = epoch(submission.get("submitted_at"))
    times["matched"] = epoch((match or {}).get("decided_at"))  # the comparison's result
    times["matching_ms"] = (match or {}).get("ms")
    times["decided"] = epoch((app.get("review") or {}).get("decided_at"))
    return {k: float(v) for k, v in times.items() if v is not None}


@dataclass
class Outcome:
    students: int = 0
    times: dict[str, dict[str, float]] = field(default_factory=dict)  # openid -> stored stage times
    completed: int = 0
    faults: int = 0
    faults_failed: int = 0
    dead_letters: int = 0
    findings: list[Finding] = field(default_factory=list)
    log_lines: int = 0  # lines of our services' logs scanned for personal data
    log_findings: dict[str, int] = field(default_factory=dict)  # kind -> unmasked values found
    # How matching found each compared photo's face (`located` of `matches`: issue 16.1).
    located: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return len({f.index for f in self.findings if f.kind == kind})

    @property
    def ok(self) -> bool:
        return (
            not self.findings
            and self.faults_failed == 0
            and self.dead_letters == 0
            and not sum(self.log_findings.values())
        )

    def table(self) -> str:
        rows = [
            (
                "faults injected",
                f"{self.faults}" + (f" ({self.faults_failed} failed)" if self.faults_failed else ""),
            ),
            ("students", str(self.students)),
            ("journeys completed", str(self.completed)),
            ("lost", str(self.count("lost"))),
            ("duplicated", str(self.count("duplicated"))),
            ("stuck", str(self.count("stuck"))),
            ("in the wrong state", str(self.count("wrong_state"))),
            ("dead-lettered messages", str(self.dead_letters)),
            ("log lines scanned (gateway, workers)", str(self.log_lines)),
            (
                "unmasked names, student numbers, ID fragments, phones in logs",
                str(sum(self.log_findings.values()))
                + (
                    f" {dict((k, v) for k, v in self.log_findings.items() if v)}"
                    if any(self.log_findings.values())
                    else ""
                ),
            ),
        ]
        if self.located:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(self.located.items()))
            rows.append(("faces located (student's photo / admission photo)", shown))
        lines = ["| audit | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
        for f in self.findings[:20]:
            lines.append(f"| student {f.index} {f.kind} | {f.what} |")
        if len(self.findings) > 20:
            lines.append(f"| ... | {len(self.findings) - 20} more findings |")
        return "\n".join(lines)


def expected_state(inputs: list[str], decided: bool) -> str | None:
    if "submit" in inputs:
        return "approved" if decided else "in_review"
    for step, state in (("pay", "paid"), ("confirm", "confirmed"), ("code", "code_verified")):
        if step in inputs:
            return state
    return None


def check_student(
    s: dict[str, Any],
    app: dict[str, Any] | None,
    decided: set[str],
    messages: Counter[tuple[str, str]],
    paid_orders: Counter[str],
    notifications_applied: Counter[str],
    notification_docs: Counter[tuple[str, str]],
) -> list[Finding]:
    i, found = int(s["index"]), list[Finding]()
    inputs: list[str] = s["inputs"]
    if not inputs:
        return found
    if app is None:
        return [Finding(i, "lost", f"inputs {inputs} accepted but no application")]
    state = str(app.get("state"))
    if int(app.get("outbox_pending") or 0) > 0:
        found.append(Finding(i, "lost", f"{app['outbox_pending']} events never left the outbox"))
    if state in TRANSITIONAL:
        found.append(Finding(i, "stuck", f"still {state}"))
    photos = app.get("photos") or {}
    processing = [pid for pid, p in photos.items() if p.get("status") == "processing"]
    if processing:
        found.append(Finding(i, "stuck", f"photo {processing[0]} still processing"))
    was_decided = bool(app["_id"] in decided)
    expected = expected_state(inputs, was_decided)
    if expected is not None and state != expected and state not in TRANSITIONAL:
        behind = state in ORDER and expected in ORDER and ORDER.index(state) < ORDER.index(expected)
        found.append(Finding(i, "lost" if behind else "wrong_state", f"{state}, expected {expected}"))
    # Charges: one paid order in WeChat Pay, one notification applied.
    if paid_orders[s["openid"]] > 1:
        found.append(Finding(i, "duplicated", f"{paid_orders[s['openid']]} paid orders"))
    if s.get("out_trade_no") and notifications_applied[s["out_trade_no"]] > 1:
        found.append(Finding(i, "duplicated", "payment notification applied twice"))
    # Notifications: one subscribe message per event.
    for (openid, template), n in messages.items():
        if openid == s["openid"] and n > 1:
            found.append(Finding(i, "duplicated", f"{n} messages of template {template}"))
    for (app_id, kind), n in notification_docs.items():
        if app_id == app["_id"] and n > 1:
            found.append(Finding(i, "duplicated", f"{n} sent notifications of kind {kind}"))
    if was_decided and state == "approved" and messages[(s["openid"], REVIEW_TEMPLATE)] == 0:
        found.append(Finding(i, "lost", "approved but the review-result message never reached WeChat"))
    # Quota: one standardisation counted per photo uploaded.
    used = int((app.get("quota") or {}).get("used") or 0)
    if used > len(photos):
        found.append(
            Finding(i, "duplicated", f"quota counts {used} standardisations for {len(photos)} photos")
        )
    return found


# The logs of our own services; the WeChat sandbox plays WeChat (which knows the phone numbers), and the
# database's and broker's own logs are theirs.
SCANNED_LOGS = ("gateway", "codec", "imaging", "matching", "notify")


def scan_logs(out: Path, students: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
    """shared.logscan over the run's service logs, knowing every simulated student's name, number, phone."""
    people = [Person.make(int(s["index"]), "") for s in students]
    known = Known.from_json([{"name": p.name, "student_number": p.number, "phone": p.phone} for p in people])
    scanner = Scanner(known)
    lines, totals = 0, Counter[str]()
    for service in SCANNED_LOGS:
        path = out / "logs" / f"{service}.log"
        if not path.exists():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            report = scanner.scan(handle)
        lines += report.lines
        totals.update(report.counts)
        for finding in report.findings[:20]:  # masked values only
            print(f"logscan {service}.log:{finding.line} {finding.kind} {finding.masked}", file=sys.stderr)
    return lines, dict(totals)


async def audit(out: Path, mongo_url: str | None = None) -> Outcome:
    run = json.loads((out / "run.json").read_text())
    sandbox = json.loads((out / "sandbox.json").read_text())
    stack = run["stack"]
    students = [s for phase in run["phases"] for s in phase["journeys"]]
    decided = set(run["decided"])
    outcome = Outcome(students=len(students), completed=sum(s["outcome"] == "done" for s in students))
    outcome.faults = sum(1 for f in run["faults"] if not f.get("error"))
    outcome.faults_failed = sum(1 for f in run["faults"] if f.get("error"))
    last = next((s for s in reversed(run["samples"]) if s["queues"] is not None), None)
    if last is not None:
        outcome.dead_letters = sum(r + u for name, (r, u) in last["queues"].items() if name.endswith(".dead"))
    outcome.log_lines, outcome.log_findings = scan_logs(out, students)

    messages: Counter[tuple[str, str]] = Counter(
        (str(m.get("touser")), str(m.get("template_id"))) for m in sandbox["messages"]["messages"]
    )
    paid_orders: Counter[str] = Counter(
        str((o.get("payer") or {}).get("openid"))
        for o in sandbox["orders"]["orders"]
        if o.get("trade_state") in ("SUCCESS", "REFUND")
    )

    server = None
    url = mongo_url or stack["mongo_url"]
    if mongo_url is None and not local.port_open("127.0.0.1", int(stack["ports"]["mongo"])):
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            *(str(Path(local.PY).with_name("nx-27017")), "--data-dir", stack["mongo_data"]),
            *("--host", "127.0.0.1", "-p", str(port), "--log-file", str(out / "logs" / "mongo-audit.log")),
            *("--pid-file", str(out / "mongo-audit.pid")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=30000)
    try:
        db = client[stack["db_name"]]
        applications = {a["owner_openid"]: a async for a in db["applications"].find({})}
        applied: Counter[str] = Counter()
        async for n in db["payment_notifications"].find({}, {"out_trade_no": 1}):
            applied[str(n.get("out_trade_no"))] += 1
        photos = {p["_id"]: p async for p in db["photos"].find({}, {"measures": 0})}
        matches = {m["_id"]: m async for m in db["matches"].find({})}
        located: Counter[str] = Counter()
        for m in matches.values():
            where = m.get("located") or {}
            located[f"{where.get('photo')} / {where.get('admission_photo')}"] += 1
        notification_docs: Counter[tuple[str, str]] = Counter()
        async for n in db["notifications"].find({"state": "sent"}, {"application_id": 1, "kind": 1}):
            notification_docs[(str(n.get("application_id")), str(n.get("kind")))] += 1
    finally:
        await client.close()
        if server is not None:
            server.terminate()
            await server.wait()
    outcome.located = dict(located)
    for openid, app in applications.items():
        photo_id = (app.get("submission") or {}).get("photo_id") or next(iter(app.get("photos") or {}), None)
        outcome.times[openid] = stored_times(app, photos.get(photo_id), matches.get(photo_id))
    for m in sandbox["messages"]["messages"]:
        if m.get("template_id") == REVIEW_TEMPLATE and str(m.get("touser")) in outcome.times:
            outcome.times[str(m["touser"])].setdefault("notified", float(m["received_at"]))
    (out / "stored_times.json").write_text(json.dumps(outcome.times))
    for s in students:
        outcome.findings += check_student(
            s, applications.get(s["openid"]), decided, messages, paid_orders, applied, notification_docs
        )
    return outcome


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "faults"
    outcome = asyncio.run(audit(LOAD_VAR / name))
    print(outcome.table())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
