"""Each collection has one owner (shared/collections.py): no service writes a collection it does not own.

A static scan, cheap enough for every run: in each service's modules, collections bound from
`<database>.db["name"]` (to a variable or an attribute) and the write methods called on them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.collections import COLLECTIONS, SHARED, may_erase, may_write

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "codec", "imaging", "matching", "notify")
# Writes and deletes alike: a non-owner may do either only as a declared privacy job.
WRITES = {
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "find_one_and_update",
    "find_one_and_replace",
    "bulk_write",
    "delete_one",
    "delete_many",
    "find_one_and_delete",
    "drop",
}


def _collection_name(node: ast.AST) -> str | None:
    """`x.db["name"]`, `db["name"]`, `self._db["name"]` → "name"."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        value = node.slice.value
        target = node.value
        named = isinstance(target, ast.Name | ast.Attribute)
        label = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
        if named and isinstance(value, str) and label.lstrip("_") in {"db", "database"}:
            return value
    return None


def _bound(tree: ast.AST) -> dict[str, str]:
    """Variable and attribute names bound to a collection anywhere in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            name = _collection_name(node.value)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                key = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                if name and key:
                    names[key] = name
    return names


def writes(service: str) -> set[tuple[str, str, str]]:
    """(collection, method, file:line) for every write the service's code makes to a named collection."""
    found: set[tuple[str, str, str]] = set()
    for path in sorted((ROOT / "services" / service).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        bound = _bound(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, node.func.value
            if method not in WRITES:
                continue
            name = _collection_name(receiver)
            if name is None:
                key = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", None)
                name = bound.get(key) if key else None
            if name is not None:
                found.add((name, method, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_collection_written_is_declared_with_its_owner() -> None:
    for service in SERVICES:
        undeclared = sorted(w for w in writes(service) if w[0] not in COLLECTIONS)
        assert not undeclared, f"declare these collections in shared/collections.py: {undeclared}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_writes_a_collection_it_does_not_own(service: str) -> None:
    trespass = sorted(
        (name, method, where)
        for name, method, where in writes(service)
        if name in COLLECTIONS and not may_write(service, name) and not may_erase(_module(where), name)
    )
    assert not trespass, f"{service} writes collections it does not own: {trespass}"


def _module(where: str) -> str:
    return where.split(":", 1)[0].removesuffix(".py").replace("/", ".")


def test_the_scan_sees_the_writes_it_checks() -> None:
    # Not vacuous: each worker's own outcome collection is found written by it.
    assert {name for name, _, _ in writes("notify")} >= {"notifications"}
    assert {name for name, _, _ in writes("gateway")} >= {"applications", "users", "audit_log"}
    # The privacy jobs are the gateway's only writes to the workers' outcomes.
    foreign = {(n, _module(w)) for n, _, w in writes("gateway") if n in ("codes", "photos", "matches")}
    assert foreign and {module for _, module in foreign} <= {"services.gateway.retention"}


def test_each_service_declares_indexes_only_on_collections_it_owns() -> None:
    from services.codec.handlers import INDEXES as CODEC
    from services.gateway.console.wiring import INDEXES as CONSOLE
    from services.gateway.store import INDEXES as GATEWAY
    from services.imaging.handlers import INDEXES as IMAGING
    from services.matching.handlers import INDEXES as MATCHING
    from services.notify.handlers import INDEXES as NOTIFY

    declared = {"codec": [CODEC], "gateway": [GATEWAY, CONSOLE], "imaging": [IMAGING]}
    declared |= {"matching": [MATCHING], "notify": [NOTIFY]}
    for service, specs in declared.items():
        for spec in specs:
            for name in spec:
                assert name in COLLECTIONS, name
                assert COLLECTIONS[name].owner in (service, SHARED), (service, name)
