"""Every overlay renders, and every rendered object validates strictly against its schema.

Built-in kinds: `kubernetes-validate` in strict mode (unknown fields are errors). KEDA and
prometheus-operator kinds: the JSON Schemas vendored under deploy/k8s/schemas (generated from those
projects' CRDs, strict). The RabbitMQ cluster/topology operators' and the MongoDB community operator's
CRD schemas are not in any package the reachable registries offer (deploy/README.md): those objects get
the promise checks of test_promises.py only, and the list of such kinds is fixed so that a new kind
cannot slip through without a schema.
"""

from __future__ import annotations

import copy
import functools
import json

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.manifests import K8S, OVERLAYS, Doc, render

KUBERNETES_VERSION = "1.33.0"
SCHEMAS = K8S / "schemas"
NO_SCHEMA_AVAILABLE = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("rabbitmq.com/v1beta1", "User"),
    ("rabbitmq.com/v1beta1", "Permission"),
    ("rabbitmq.com/v1beta1", "Policy"),
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"),
}


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    group, _, version = api_version.partition("/")
    path = SCHEMAS / group / f"{kind}_{version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def crd_problems(doc: Doc) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    assert validator is not None
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


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
def test_custom_resources_validate_against_vendored_crd_schemas(overlay: str) -> None:
    problems = []
    for doc in render(overlay):
        if is_builtin(doc):
            continue
        key = (doc["apiVersion"], doc["kind"])
        if crd_validator(*key) is None:
            assert key in NO_SCHEMA_AVAILABLE, f"no schema for {key}: vendor one under deploy/k8s/schemas"
            continue
        problems += [f"{doc['kind']}/{doc['metadata']['name']}: {p}" for p in crd_problems(doc)]
    assert not problems


def test_vendored_schemas_refuse_unknown_fields_and_bad_types() -> None:
    doc = next(d for d in render("staging") if d["kind"] == "ScaledObject")
    misspelt = copy.deepcopy(doc)
    misspelt["spec"]["minReplicas"] = 3
    assert any("minReplicas" in p for p in crd_problems(misspelt))
    wrong_type = copy.deepcopy(doc)
    wrong_type["spec"]["triggers"][0]["metadata"]["value"] = 20
    assert crd_problems(wrong_type)
    monitor = copy.deepcopy(next(d for d in render("staging") if d["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["pathh"] = "/metrics"
    assert crd_problems(monitor)


def test_vendored_schemas_have_their_licence() -> None:
    for group in ("keda.sh", "monitoring.coreos.com"):
        assert "Apache License" in (SCHEMAS / group / "LICENSE").read_text()
