"""The Dockerfiles under deploy/docker: one per service, each installing only its own extra, on a pinned
base, running as a non-root user, with a health check on /healthz; and in step with pyproject.toml and
the image smoke test (every extra has an image, every image's entry point exists and imports nothing
its extra does not install)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.deploy.manifests import DEPLOY, ROOT, SERVICES

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
NO_DEPS = PYPROJECT["tool"]["gradphoto"]["no-deps"]
SETTINGS = {
    "gateway": "services.gateway.config:GatewaySettings",
    "codec": "services.codec.config:CodecSettings",
    "imaging": "services.imaging.config:ImagingSettings",
    "matching": "services.matching.config:MatchingSettings",
    "notify": "services.notify.config:NotifySettings",
}


# Extras that are not services: the local run's database and the development tools.
NOT_IMAGES = {"local", "dev"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def default_port(service: str) -> int:
    module, _, name = SETTINGS[service].partition(":")
    return int(getattr(importlib.import_module(module), name).model_fields["http_port"].default)


def test_one_dockerfile_per_service() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in (DEPLOY / "docker").glob("*.Dockerfile")} == set(
        SERVICES
    )
    assert set(SERVICES) <= set(EXTRAS)


def build_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    """ARG NAME=DEFAULT declared before the first FROM (the ones a FROM line may use)."""
    args = {}
    for word, rest in steps:
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
    return args


def bases(service: str) -> list[str]:
    steps = instructions(DEPLOY / "docker" / f"{service}.Dockerfile")
    args = build_args(steps)
    found = []
    for word, rest in steps:
        if word == "FROM":
            image = rest.split()[0]
            found.append(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_base_image_pinned(service: str) -> None:
    """The default base (what a registry-connected build uses) is a pinned public image, the same in
    every stage and every Dockerfile; `make images` may pass another one as BASE_IMAGE."""
    found = bases(service)
    assert found
    for base in found:
        assert "@sha256:" in base or re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
        assert not base.endswith(":latest")
    assert set(found) == set(bases("gateway"))


def test_every_extra_has_an_image() -> None:
    assert set(EXTRAS) - NOT_IMAGES == set(SERVICES)
    for service in SERVICES:
        assert (DEPLOY / "docker" / f"{service}.Dockerfile").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root(service: str) -> None:
    steps = instructions(DEPLOY / "docker" / f"{service}.Dockerfile")
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"


@pytest.mark.parametrize("service", SERVICES)
def test_health_check_and_port(service: str) -> None:
    steps = instructions(DEPLOY / "docker" / f"{service}.Dockerfile")
    (check,) = [args for word, args in steps if word == "HEALTHCHECK"]
    assert "/healthz" in check and "CMD" in check
    port = default_port(service)
    assert ("EXPOSE", str(port)) in steps
    assert any(w == "ENV" and f"HTTP_PORT={port}" in a for w, a in steps)
    assert steps[-1] == ("CMD", f'["python", "-m", "services.{service}"]')


@pytest.mark.parametrize("service", SERVICES)
def test_installs_only_its_extra(service: str) -> None:
    runs = " && ".join(
        args for word, args in instructions(DEPLOY / "docker" / f"{service}.Dockerfile") if word == "RUN"
    )
    extras = re.findall(r'"\.\[([\w,-]+)\]"', runs)
    assert extras == [service]
    no_deps = re.findall(r"pip install --no-deps ([^&;]+)", runs)
    assert sorted(" ".join(no_deps).split()) == sorted(NO_DEPS.get(service, []))
    assert "dev" not in extras and "local" not in extras


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!shared/", "!services/"} <= set(lines)


# --- the entry point exists and needs nothing beyond its extra ---------------------------------------


def entry_module(service: str) -> str:
    cmd = [args for word, args in instructions(DEPLOY / "docker" / f"{service}.Dockerfile") if word == "CMD"]
    match = re.fullmatch(r'\["python", "-m", "([\w.]+)"\]', cmd[-1])
    assert match, cmd
    return match.group(1)


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported: its module-level imports (also inside try/if blocks),
    not those inside functions (imported on use) nor under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{node.module}" if node.module else parent
                else:
                    base = node.module or ""
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def imported_distributions(entry: str) -> tuple[set[str], set[str]]:
    """(our modules loaded, third-party distributions needed) when `python -m entry` starts."""
    ours: set[str] = set()
    third: set[str] = set()
    dists = importlib.metadata.packages_distributions()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in ours:
            continue
        top = module.split(".")[0]
        if top in ("services", "shared", "sandbox"):
            path = module_file(module)
            if path is None:
                continue  # a name imported from a module (`from shared.db import Database`)
            ours.add(module)
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            parts = module.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
            todo.extend(top_level_imports(path))
        elif top not in sys.stdlib_module_names and top != "__future__":
            assert top in dists, f"{module} (imported on the way to {entry}) belongs to no installed package"
            third.update(canonical(d) for d in dists[top])
    return ours, third


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return canonical(match.group(0))


def closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for these pins: their requirements, transitively, as the markers
    say for this interpreter (the images' Python minor version and platform: Linux, 3.11)."""
    seen: set[str] = set()
    todo = [requirement_name(r) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            # The image's Python (3.11 on Linux) decides the markers; requirements of extras are skipped.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonical(requirement.name))
    return seen


@pytest.mark.parametrize("service", SERVICES)
def test_entry_point_exists_and_needs_only_its_extra(service: str) -> None:
    entry = entry_module(service)
    assert entry == f"services.{service}"
    assert module_file(entry) == ROOT / "services" / service / "__main__.py"
    ours, needed = imported_distributions(entry)
    # What the image installs: the base dependencies, the service's extra and its --no-deps pins (alone).
    installed = closure(PYPROJECT["project"]["dependencies"] + EXTRAS[service]) | {
        requirement_name(p) for p in NO_DEPS.get(service, [])
    }
    assert needed - installed == set(), f"{service} imports packages its image does not install"
    other_workers = {f"services.{s}" for s in SERVICES if s != service}
    assert not {
        m
        for m in ours
        if m.split(".")[0:2] != ["services", service] and ".".join(m.split(".")[:2]) in other_workers
    }


def test_the_import_walk_sees_a_missing_dependency() -> None:
    """The check above would fail for the gateway if it imported the codec's OpenCV at start-up."""
    _, needed = imported_distributions("services.codec")
    assert "opencv-python-headless" in needed
    gateway = closure(PYPROJECT["project"]["dependencies"] + EXTRAS["gateway"])
    assert "opencv-python-headless" not in gateway and "numpy" not in gateway


def test_make_images_and_the_smoke_test_cover_every_service() -> None:
    """`make images` builds, and `make images-smoke` runs, exactly the services that have a Dockerfile."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^IMAGES \?= (.+)$", makefile, re.M)
    assert match and tuple(match.group(1).split()) == SERVICES
    script = (DEPLOY / "docker" / "local" / "images.sh").read_text()
    match = re.search(r"services=\(([\w ]+)\)", script)
    assert match and tuple(match.group(1).split()) == SERVICES
    smoke = ast.parse((DEPLOY / "docker" / "local" / "smoke.py").read_text())
    (listed,) = [
        ast.literal_eval(node.value)
        for node in smoke.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SERVICES" for t in node.targets)
    ]
    assert tuple(listed) == SERVICES
    # The smoke test runs them as deployed: read-only root, the image's own non-root user (no --user).
    text = (DEPLOY / "docker" / "local" / "smoke.py").read_text()
    assert '"--read-only"' in text and '"--user"' not in text and '"no-new-privileges"' in text
