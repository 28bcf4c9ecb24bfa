"""Every overlay renders, and every rendered object validates strictly against its schema.

Built-in kinds: `kubernetes-validate` in strict mode (unknown fields are errors). KEDA and
prometheus-operator kinds: the cloudcoil models generated from those projects' CRDs (pinned PyPI
packages), with unknown fields made errors here. The RabbitMQ cluster/topology operators' and the MongoDB
community operator's CRD schemas are not in any package the reachable registries offer
(deploy/README.md): those objects get the promise checks of test_promises.py only, and the list of such
kinds is fixed so that a new kind cannot slip through without a schema.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as prometheus
from pydantic import BaseModel

from tests.deploy.manifests import OVERLAYS, Doc, render

KUBERNETES_VERSION = "1.33.0"
CRD_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): prometheus.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): prometheus.PrometheusRule,
}
NO_SCHEMA_AVAILABLE = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("rabbitmq.com/v1beta1", "User"),
    ("rabbitmq.com/v1beta1", "Permission"),
    ("rabbitmq.com/v1beta1", "Policy"),
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"),
}


def unknown_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths present in `given` but dropped by the model (pydantic ignores unknown fields)."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "/"]
        return [
            p
            for key, value in given.items()
            for p in (
                [f"{path}/{key}"] if key not in kept else unknown_fields(value, kept[key], f"{path}/{key}")
            )
        ]
    if isinstance(given, list) and isinstance(kept, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for p in unknown_fields(g, k, f"{path}/{i}")
        ]
    return []


def is_builtin(doc: Doc) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "/" not in doc["apiVersion"] or group.endswith(".k8s.io") or "." not in group


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    kinds = {d["kind"] for d in render(overlay)}
    assert {"Deployment", "Service", "ScaledObject", "RabbitmqCluster", "MongoDBCommunity"} <= kinds


def test_both_overlays_exist() -> None:
    assert {"staging", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_validate_strictly(overlay: str) -> None:
    problems = []
    for doc in render(overlay):
        if is_builtin(doc):
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crd_models(overlay: str) -> None:
    problems = []
    for doc in render(overlay):
        if is_builtin(doc):
            continue
        key = (doc["apiVersion"], doc["kind"])
        assert key in CRD_MODELS or key in NO_SCHEMA_AVAILABLE, f"no schema check for {key}"
        if key not in CRD_MODELS:
            continue
        model = CRD_MODELS[key].model_validate(doc)
        kept = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        for path in unknown_fields(doc, kept):
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: unknown field {path}")
    assert not problems


def test_unknown_field_detection_works() -> None:
    doc = next(d for d in render("staging") if d["kind"] == "ScaledObject")
    bad = {**doc, "spec": {**doc["spec"], "minReplicas": 3}}
    kept = keda.ScaledObject.model_validate(bad).model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert unknown_fields(bad, kept) == ["/spec/minReplicas"]
