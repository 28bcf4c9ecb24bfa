"""Write the JSON Schemas of the custom resources that tests/deploy validate, from cloudcoil's models.

cloudcoil-models-keda and cloudcoil-models-prometheus-operator (PyPI, Apache-2.0) are pydantic models
generated from the KEDA and prometheus-operator CRDs. This exports their JSON Schema and makes it strict
the way kubeconform's openapi2jsonschema does: every object that lists its properties refuses others
(and a Go regular expression with its inline flag after `^` is rewritten the way Python accepts it).
Run in a throwaway virtualenv (they are not project dependencies):

    pip install cloudcoil-models-keda==2.16.1.0 cloudcoil-models-prometheus-operator==0.80.1.0
    python deploy/k8s/schemas/export.py
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as prometheus

HERE = Path(__file__).resolve().parent
MODELS = {
    ("keda.sh", "v1alpha1", "ScaledObject"): (keda.ScaledObject, "cloudcoil-models-keda"),
    ("keda.sh", "v1alpha1", "TriggerAuthentication"): (keda.TriggerAuthentication, "cloudcoil-models-keda"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor"): (
        prometheus.ServiceMonitor,
        "cloudcoil-models-prometheus-operator",
    ),
    ("monitoring.coreos.com", "v1", "PrometheusRule"): (
        prometheus.PrometheusRule,
        "cloudcoil-models-prometheus-operator",
    ),
}


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        # Go's regexp takes an inline flag anywhere; Python's only at the start (same meaning).
        if isinstance(node.get("pattern"), str) and node["pattern"].startswith("^(?i)"):
            node["pattern"] = "(?i)^" + node["pattern"].removeprefix("^(?i)")
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def main() -> None:
    for (group, version, kind), (model, dist) in MODELS.items():
        schema = strict(model.model_json_schema(by_alias=True, mode="validation"))
        schema["$comment"] = (
            f"{dist} {metadata.version(dist)}: {model.__module__}.{model.__name__}, made strict"
        )
        target = HERE / group / f"{kind}_{version}.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(target.relative_to(HERE))


if __name__ == "__main__":
    main()
