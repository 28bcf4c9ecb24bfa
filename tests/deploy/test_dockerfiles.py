"""The Dockerfiles under deploy/docker: one per service, each installing only its own extra, on a pinned
base, running as a non-root user, with a health check on /healthz."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("service", SERVICES)
def test_base_image_pinned(service: str) -> None:
    bases = [
        args.split()[0]
        for word, args in instructions(DEPLOY / "docker" / f"{service}.Dockerfile")
        if word == "FROM"
    ]
    assert bases
    for base in bases:
        assert "@sha256:" in base or re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
        assert not base.endswith(":latest")


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
