"""The gateway imports no worker's code (issue 13.2): what both sides need lives in shared/.

Its image carries only the `gateway` extra, so an import of a worker module would either fail there
(a worker's dependency missing) or tie the gateway's release to a worker's internals.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "services" / "gateway"
WORKERS = ("codec", "imaging", "matching", "notify")
# None left: the roster import's admission-photo check is matching's own (`services.matching.cli
# precompute`, issue 16.1).
PENDING: set[tuple[str, str]] = set()


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def worker_imports() -> set[tuple[str, str]]:
    found = set()
    for path in GATEWAY.rglob("*.py"):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] in WORKERS:
                module = name if (ROOT / Path(*parts)).with_suffix(".py").exists() else ".".join(parts[:-1])
                found.add((str(path.relative_to(ROOT)), module))
    return found


def test_gateway_imports_no_worker_code() -> None:
    assert worker_imports() - PENDING == set()


def test_the_finder_sees_a_worker_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "import services.notify.outcomes\nfrom services.imaging import cli\n"
        "def f():\n    from shared.print_sheet import layout\n"
    )
    assert imported_modules(sample) >= {
        "services.notify.outcomes",
        "services.imaging",
        "services.imaging.cli",
        "shared.print_sheet",
    }
