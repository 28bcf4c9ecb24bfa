"""API fuzzing: schemathesis against the gateway's own OpenAPI documents, signed in, on the real broker and
database.

Two runs, each a `schemathesis run` process against the gateway serving in this test's event loop:
- the student API (`/api/v1/openapi.json`) with a logged-in student whose code is verified (so the
  endpoints past the code step answer with real data, not only 401/409);
- the console API (`/console/api/v1/openapi.json`) signed in as an admin (session cookie + CSRF header),
  with a case waiting for review.

Checks: no 5xx (`not_a_server_error`), every response's body matching its declared schema
(`response_schema_conformance`), status code and content type declared (`status_code_conformance`,
`content_type_conformance`). Examples per operation are bounded (`FUZZ_EXAMPLES`, 60 by default) so the
suite stays a few minutes on two cores; raise it for a deeper run (`FUZZ_EXAMPLES=500 make pytest ...`).
Operations that end the caller's own session (logout, unbinding) are left out: they would turn the rest of
the run into 401s; their behaviour is covered by their own tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from services.gateway.console.operators import Role
from tests.support.console import in_review_case, operator
from tests.support.system import running_system

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


async def fuzz(
    schema_url: str,
    base_url: str,
    headers: dict[str, str],
    exclude: list[str],
    report: Path,
    known: dict[str, str],
) -> tuple[int, str]:
    """`known`: path parameters that name things that exist (so those operations get past 404)."""
    config = report.with_suffix(".toml")
    config.write_text("[parameters]\n" + "".join(f'"path.{k}" = "{v}"\n' for k, v in known.items()))
    args = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        schema_url,
        "--url",
        base_url,
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "20261128",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--generation-database",
        "none",
        # Our own credentials (the -H headers) on every request, not generated ones.
        "--generation-with-security-parameters",
        "false",
        "--suppress-health-check",
        "all",
        "--continue-on-failure",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if exclude:  # one regex: of several --exclude-path-regex options only the last one counts
        args += ["--exclude-path-regex", "|".join(f"(?:{pattern})" for pattern in exclude)]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report.parent
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=900)
    assert process.returncode is not None
    report.with_suffix(".txt").write_bytes(out)  # the whole report, beside the NDJSON one
    return process.returncode, out.decode(errors="replace")


def operations_fuzzed(output: str) -> int:
    """How many operations the fuzzing phase ran and passed ("Operations: 14 selected / 15 total", then
    under "Fuzzing": "14 passed"); both must agree, so an operation that errored out is not counted."""
    selected = re.search(r"Operations:\s+(\d+) selected", output)
    fuzzing = re.search(r"Fuzzing \(in [^)]*\)\s+\S+\s+(\d+) passed", output)
    assert selected and fuzzing, f"no summary in schemathesis output:\n{output[-3000:]}"
    assert fuzzing.group(1) == selected.group(1), output[-3000:]
    return int(fuzzing.group(1))


async def test_student_api_fuzzing_finds_no_server_error_and_no_schema_mismatch(env, tmp_path):
    async with running_system(env, with_codec=True) as system:
        student = await system.verified_student("o-fuzz-student")
        code, output = await fuzz(
            f"{system.base_url}/api/v1/openapi.json",
            system.base_url,
            {"Authorization": f"Bearer {student.token}"},
            exclude=["^/api/v1/me/binding$"],
            report=tmp_path / "student.ndjson",
            known={"scan_id": student.scan_id, "school_code": "10487"},
        )
        assert code == 0, output[-6000:]
        assert operations_fuzzed(output) >= 14, output[-3000:]
        # The student's own data survived the fuzzing: still signed in, still the same application.
        assert (await student.status())["state"] in {"code_verified", "confirmed", "paid"}


async def test_console_api_fuzzing_finds_no_server_error_and_no_schema_mismatch(env, tmp_path):
    async with running_system(env, with_codec=False) as system:
        admin = await operator(system, "fuzz-admin@example.com", Role.ADMIN, [])
        application_id = await in_review_case(system)
        cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
        code, output = await fuzz(
            f"{system.base_url}/console/api/v1/openapi.json",
            system.base_url,
            {"Cookie": cookie, "X-CSRF-Token": admin.csrf},
            exclude=["^/console/api/v1/logout$", "^/console/api/v1/login$"],
            report=tmp_path / "console.ndjson",
            known={"application_id": application_id, "school_code": "10487"},
        )
        assert code == 0, output[-6000:]
        assert operations_fuzzed(output) >= 20, output[-3000:]
        status, me = await admin.request("GET", "/console/api/v1/me")
        assert status == 200 and me["role"] == "admin"
