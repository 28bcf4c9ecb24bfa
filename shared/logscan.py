"""A scanner for personal data that reached a log unmasked (PIPL; the proof behind shared/logging.py).

`python -m shared.logscan [--known FILE] LOG...` reads log files (JSON lines as `shared.logging` writes
them, or any text) and reports, per kind, every line holding:
- `phone`: a mainland mobile number, 1[3-9] and 9 digits (optionally +86), not masked;
- `id_number`: an 18-character resident ID number;
- `id_fragment`: an ID fragment (3-4 digits or more) under a key such as `id_last4`, `id_masked`, `id_number`;
- `student_number`: a value under a key such as `student_number` that is not masked, a digit run of
  8 or more in a string (the redactor masks every such run outside identifier keys), or a known one;
- `name`: a known name (names have no pattern; `--known` lists them);
- `known_phone`, `known_id`: a known phone number or ID number in any spelling of its digits.
Known values come from `--known FILE`: JSON, either `{"names": [...], "student_numbers": [...],
"phones": [...], "id_numbers": [...], "id_last4": [...]}` or a list of objects with keys `name`,
`student_number`, `phone`, `id_number`, `id_last4` (the simulated students of a load run).
Each finding is printed as `FILE:LINE kind masked-value` (masked: the report never repeats the data),
then one JSON summary line with the counts. Exit status 1 when anything was found, 0 when clean,
2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.logging import (
    ID_KEYS,
    PHONE_KEYS,
    STUDENT_ID_KEYS,
    STUDENT_NUMBER_KEYS,
    mask_name,
    mask_phone,
    mask_student_number,
)

_B = r"(?<![0-9A-Za-z])"
_E = r"(?![0-9A-Za-z])"
PHONE_RE = re.compile(_B + r"(?:\+?86[- ]?)?1[3-9]\d{9}" + _E)
ID_NUMBER_RE = re.compile(_B + r"\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[\dXx]" + _E)
# Not the integer part of a decimal (a third-party log's 1795872946.202062 timestamp is no student number).
DIGIT_RUN_RE = re.compile(r"(?<![0-9A-Za-z.])\d{8,}(?![0-9A-Za-z]|\.\d)")
PHONE_STRETCH_RE = re.compile(r"\+?\d[\d \-]{9,}\d")
FRAGMENT_RE = re.compile(r"\d{3}[\dXx]|\d{4}")
# key=value or "key": "value" in text lines (console renderer, f-strings, foreign libraries).
KEYED_RE = re.compile(r"""["']?\b([A-Za-z_][A-Za-z0-9_]*)["']?\s*[:=]\s*["']?([^"',\s}\]]*)""")
KINDS = ("phone", "id_number", "id_fragment", "student_number", "name", "known_phone", "known_id")


def _is_identifier_key(key: str) -> bool:
    k = key.lower()
    return k == "id" or k.endswith("_id") or k in {"trace", "span", "timestamp"}


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def mask_any(kind: str, value: str) -> str:
    if kind in ("phone", "known_phone"):
        return mask_phone(value)
    if kind == "name":
        return mask_name(value)
    if kind in ("id_number", "id_fragment", "known_id"):
        return "*" * max(len(value) - 1, 3) + value[-1:] if len(value) > 4 else "****"
    return mask_student_number(value)


@dataclass
class Known:
    names: set[str] = field(default_factory=set)
    student_numbers: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    id_numbers: set[str] = field(default_factory=set)

    @classmethod
    def from_json(cls, data: Any) -> Known:
        known = cls()
        if isinstance(data, Mapping):
            groups = {
                "names": data.get("names", []),
                "student_numbers": data.get("student_numbers", []),
                "phones": data.get("phones", []),
                "id_numbers": data.get("id_numbers", []),
            }
            rows: list[Any] = []
        elif isinstance(data, list):
            groups = {}
            rows = data
        else:
            raise ValueError("known values: a JSON object of lists or a list of objects")
        for row in rows:
            if isinstance(row, Mapping):
                groups.setdefault("names", []).append(row.get("name"))
                groups.setdefault("student_numbers", []).append(row.get("student_number"))
                groups.setdefault("phones", []).append(row.get("phone"))
                groups.setdefault("id_numbers", []).append(row.get("id_number"))
        known.names = {str(v).strip() for v in groups.get("names", []) if v and len(str(v).strip()) >= 2}
        known.student_numbers = {
            str(v).strip() for v in groups.get("student_numbers", []) if v and len(str(v).strip()) >= 5
        }
        known.phones = {
            _digits(str(v))[-11:] for v in groups.get("phones", []) if v and len(_digits(str(v))) >= 11
        }
        known.id_numbers = {
            str(v).strip().upper() for v in groups.get("id_numbers", []) if v and len(str(v)) >= 15
        }
        return known


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str
    masked: str


@dataclass
class ScanReport:
    lines: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(f.kind for f in self.findings)
        return {kind: counted.get(kind, 0) for kind in KINDS}

    @property
    def clean(self) -> bool:
        return not self.findings


class Scanner:
    def __init__(self, known: Known | None = None) -> None:
        self.known = known or Known()
        numbers = sorted(self.known.student_numbers, key=len, reverse=True)
        self._numbers_re = (
            re.compile(_B + "(?:" + "|".join(re.escape(n) for n in numbers) + ")" + _E) if numbers else None
        )
        self._names = sorted(self.known.names, key=len, reverse=True)

    def _text(self, text: str, *, identifier: bool) -> Iterator[tuple[str, str]]:
        """Findings in free text; inside an identifier value only known personal values count."""
        for name in self._names:
            if name in text:
                yield "name", name
        if self._numbers_re is not None:
            for m in self._numbers_re.finditer(text):
                yield "student_number", m.group()
        # A known number written with spaces or dashes (138 1234 5678): digits of each such stretch.
        stretches = [_digits(m.group()) for m in PHONE_STRETCH_RE.finditer(text)]
        for phone in self.known.phones:
            if any(phone in digits for digits in stretches) and not PHONE_RE.search(text):
                yield "known_phone", phone
        upper = text.upper()
        for id_number in self.known.id_numbers:
            if id_number in upper:
                yield "known_id", id_number
        if identifier:
            return
        for m in PHONE_RE.finditer(text):
            yield "phone", m.group()
        for m in ID_NUMBER_RE.finditer(text):
            yield "id_number", m.group()
        for m in DIGIT_RUN_RE.finditer(text):
            run = m.group()
            if not (
                PHONE_RE.fullmatch(run) or ID_NUMBER_RE.fullmatch(run) or run in self.known.student_numbers
            ):
                yield "student_number", run

    def _keyed(self, key: str, value: Any) -> Iterator[tuple[str, str]]:
        k = key.lower()
        if value is None or isinstance(value, bool):
            return
        text = str(value)
        if k in ID_KEYS and FRAGMENT_RE.search(text):
            yield "id_fragment", text
        elif (k in STUDENT_NUMBER_KEYS and re.search(r"\d{5,}", text)) or (
            k in STUDENT_ID_KEYS and re.search(r":\d{5,}", text)  # `<school>:<student number>`
        ):
            yield "student_number", text
        elif k in PHONE_KEYS and re.search(r"\d{7,}", _digits(text)) and "*" not in text:
            yield "phone", text

    def _walk(self, obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                yield from self._walk(v, str(k))
            return
        if isinstance(obj, list):
            for v in obj:
                yield from self._walk(v, key)
            return
        if key:
            keyed = list(self._keyed(key, obj))
            if keyed:
                yield from keyed
                return
        if isinstance(obj, str):
            yield from self._text(obj, identifier=_is_identifier_key(key))

    def scan_line(self, line: str) -> list[tuple[str, str]]:
        stripped = line.strip()
        if not stripped:
            return []
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return list(dict.fromkeys(self._walk(parsed)))
        found: list[tuple[str, str]] = []
        keyed_spans: list[tuple[int, int]] = []
        for m in KEYED_RE.finditer(stripped):
            hits = list(self._keyed(m.group(1), m.group(2)))
            if hits:
                found.extend(hits)
                keyed_spans.append(m.span(2))
            elif _is_identifier_key(m.group(1)):
                # Our own ids (uuids, hex) may hold digit runs; only known personal values count there.
                found.extend(self._text(m.group(2), identifier=True))
                keyed_spans.append(m.span(2))
        text = stripped
        for start, end in reversed(keyed_spans):
            text = text[:start] + " " + text[end:]
        found.extend(self._text(text, identifier=False))
        return list(dict.fromkeys(found))

    def scan(self, lines: Iterable[str]) -> ScanReport:
        report = ScanReport()
        for number, line in enumerate(lines, start=1):
            report.lines += 1
            for kind, value in self.scan_line(line):
                report.findings.append(Finding(number, kind, mask_any(kind, value)))
        return report


def load_known(path: str | None) -> Known:
    if not path:
        return Known()
    return Known.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.logscan", description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", help="log files (JSON lines or text); - for standard input")
    parser.add_argument("--known", help="JSON file of known personal values (see the module's docstring)")
    parser.add_argument(
        "--max-print", type=int, default=200, help="findings printed at most (all are counted)"
    )
    args = parser.parse_args(argv)
    try:
        scanner = Scanner(load_known(args.known))
    except (OSError, ValueError) as exc:
        print(f"logscan: cannot read the known values: {exc}", file=sys.stderr)
        return 2
    totals: Counter[str] = Counter()
    lines = printed = 0
    for name in args.logs:
        try:
            handle = sys.stdin if name == "-" else open(name, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            print(f"logscan: {name}: {exc.strerror}", file=sys.stderr)
            return 2
        with handle:
            report = scanner.scan(handle)
        lines += report.lines
        totals.update(report.counts)
        for finding in report.findings:
            if printed < args.max_print:
                print(f"{name}:{finding.line} {finding.kind} {finding.masked}")
                printed += 1
    found = sum(totals.values())
    summary = {
        "files": len(args.logs),
        "lines": lines,
        "findings": found,
        "by_kind": {k: totals[k] for k in KINDS},
    }
    print(json.dumps({"ok": found == 0, **summary}, ensure_ascii=False))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
