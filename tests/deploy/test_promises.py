"""The rendered overlays keep the promises of issue 8: probes, limits, pinned images, non-root,
network policies, grace periods above the drain time, the ingress body limit, a ScaledObject per queue."""

from __future__ import annotations

import json
import re

import pytest

from services.gateway.config import GatewaySettings
from shared.config import Settings
from shared.topology import CONSUMERS
from tests.deploy.manifests import OVERLAYS, SERVICES, WORKERS, Doc, config_value, of_kind, render

# The slowest handler measured (bench/RESULTS.md): a 2 MP face comparison with face_recognition's call
# sequence took 2.3 s, our engine 0.4 s; 12 MP standardisation p95 0.36 s. Rounded up with a margin.
SLOWEST_HANDLER_S = 5.0
NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def deployments(overlay: str) -> dict[str, Doc]:
    return of_kind(render(overlay), "Deployment")


def containers(deployment: Doc) -> list[Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_deployment_service_pdb_and_servicemonitor(overlay: str) -> None:
    docs = render(overlay)
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"):
        assert set(of_kind(docs, kind)) >= set(SERVICES), kind
    for name, monitor in of_kind(docs, "ServiceMonitor").items():
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_on_healthz_and_readyz(overlay: str) -> None:
    for name, deployment in deployments(overlay).items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        port = container["readinessProbe"]["httpGet"]["port"]
        declared = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port in declared, name
        docs = render(overlay)
        serving = config_value(docs, deployment, "OPS_PORT") or config_value(docs, deployment, "HTTP_PORT")
        assert str(declared[port]) == serving, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_and_readiness_are_not_on_the_port_the_ingress_exposes(overlay: str) -> None:
    """Issue 13 item 10: /metrics and /readyz were served on the gateway's public port."""
    docs = render(overlay)
    gateway = deployments(overlay)["gateway"]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = of_kind(docs, "Service")["gateway"]
    target_of = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    exposed = set()
    for ingress in of_kind(docs, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                exposed.add(declared[target_of[path["backend"]["service"]["port"]["name"]]])
    assert exposed == {int(config_value(docs, gateway, "HTTP_PORT") or 0)}
    ops = config_value(docs, gateway, "OPS_PORT")
    assert ops is not None and int(ops) not in exposed
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert declared[container[probe]["httpGet"]["port"]] == int(ops), probe
    monitor = of_kind(docs, "ServiceMonitor")["gateway"]["spec"]["endpoints"][0]
    assert declared[target_of[monitor["port"]]] == int(ops)
    # Prometheus may reach the gateway's ops port only, not the API port.
    policy = of_kind(docs, "NetworkPolicy")["gateway-metrics-from-prometheus"]
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["ops"]
    # The settings the gateway reads agree: a production gateway without OPS_PORT refuses to start.
    assert GatewaySettings(ops_port=int(ops)).ops_port == int(ops)
    assert config_value(docs, gateway, "GATEWAY_TRUSTED_PROXIES")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_requests_and_limits_set(overlay: str) -> None:
    for name, deployment in deployments(overlay).items():
        for container in containers(deployment):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: {kind}"


def image_tag(image: str) -> str | None:
    if "@sha256:" in image:
        return "digest"
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_pinned_never_latest(overlay: str) -> None:
    docs = render(overlay)
    images = [c["image"] for d in deployments(overlay).values() for c in containers(d)]
    images += [d["spec"]["image"] for d in docs if d["kind"] == "RabbitmqCluster"]
    assert images
    for image in images:
        tag = image_tag(image)
        assert tag not in (None, "latest"), image
    for mongo in of_kind(docs, "MongoDBCommunity").values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", mongo["spec"]["version"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_non_root_read_only_no_privileges(overlay: str) -> None:
    for name, deployment in deployments(overlay).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in containers(deployment):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_outlasts_drain_and_slowest_handler(overlay: str) -> None:
    docs = render(overlay)
    for name, deployment in deployments(overlay).items():
        pod = deployment["spec"]["template"]["spec"]
        drain = config_value(docs, deployment, "DRAIN_TIMEOUT_S")
        drain_s = float(drain) if drain is not None else Settings.model_fields["drain_timeout_s"].default
        pre_stop = (
            pod["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        )
        assert pod["terminationGracePeriodSeconds"] > pre_stop + drain_s + SLOWEST_HANDLER_S, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay: str) -> None:
    policies = of_kind(render(overlay), "NetworkPolicy")
    deny = policies["default-deny"]
    assert deny["spec"]["podSelector"] == {"matchLabels": {"gradphoto.io/tier": "app"}}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny["spec"]
    for deployment in deployments(overlay).values():
        assert deployment["spec"]["template"]["metadata"]["labels"]["gradphoto.io/tier"] == "app"
    # Only the gateway accepts traffic from the ingress controller; the rest only from Prometheus.
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            sources = {
                peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                for peer in rule["from"]
            }
            if "ingress-nginx" in sources:
                assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
            else:
                assert sources == {"monitoring"}, name
    # Egress: DNS, RabbitMQ and MongoDB for all; port 443 outside the cluster for the gateway and notify.
    egress_ports = {}
    for policy in policies.values():
        for rule in policy["spec"].get("egress", []):
            for port in rule["ports"]:
                egress_ports.setdefault(port["port"], []).append(policy["spec"]["podSelector"])
    assert set(egress_ports) == {53, 5672, 27017, 443, 15672}
    # The management API (console dashboard) for the gateway only.
    assert egress_ports[15672] == [{"matchLabels": {"app.kubernetes.io/name": "gateway"}}]
    https = policies["egress-wechat-https"]["spec"]
    assert https["podSelector"]["matchExpressions"][0]["values"] == ["gateway", "notify"]
    assert "10.0.0.0/8" in https["egress"][0]["to"][0]["ipBlock"]["except"]


def nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kmgKMG]?)", value)
    assert match, value
    return int(match[1]) * NGINX_UNITS[match[2].lower()]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_only_for_gateway_with_the_upload_limit(overlay: str) -> None:
    docs = render(overlay)
    ingresses = of_kind(docs, "Ingress")
    assert list(ingresses) == ["gateway"]
    ingress = ingresses["gateway"]
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway"}
    limit = nginx_size(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"])
    configured = config_value(docs, deployments(overlay)["gateway"], "GATEWAY_MAX_UPLOAD_BYTES")
    default = GatewaySettings.model_fields["gateway_max_upload_bytes"].default
    assert limit == int(configured or default) == 10 * 1024 * 1024


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_worker_scales_on_its_own_queue(overlay: str) -> None:
    docs = render(overlay)
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == set(WORKERS)
    assert set(WORKERS) <= set(CONSUMERS)
    for worker, obj in scaled.items():
        assert obj["spec"]["scaleTargetRef"]["name"] == worker
        assert obj["spec"]["minReplicaCount"] >= 1
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == worker
        # Over the management API the count includes unacknowledged (in-progress) messages.
        assert trigger["metadata"]["protocol"] == "http"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"].get("excludeUnacknowledged", "false") == "false"
        assert trigger["authenticationRef"]["name"] in of_kind(docs, "TriggerAuthentication")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_stores(overlay: str) -> None:
    docs = render(overlay)
    (rabbit,) = of_kind(docs, "RabbitmqCluster").values()
    assert rabbit["spec"]["replicas"] == 3
    (mongo,) = of_kind(docs, "MongoDBCommunity").values()
    assert mongo["spec"]["members"] == 3 and mongo["spec"]["type"] == "ReplicaSet"
    policies = of_kind(docs, "Policy")
    for consumer in CONSUMERS:
        definition = policies[f"{consumer}-backstop"]["spec"]["definition"]
        assert definition["dead-letter-routing-key"] == f"{consumer}.dead"
        assert definition["delivery-limit"] > Settings.model_fields["bus_max_attempts"].default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_committed(overlay: str) -> None:
    docs = render(overlay)
    assert not of_kind(docs, "Secret")
    secret_words = ("KEY", "SECRET", "PASSWORD", "TOKEN")
    for config in of_kind(docs, "ConfigMap").values():
        for key in config.get("data", {}):
            assert not any(w in key for w in secret_words) or key.endswith(("_API", "_REQUIRE_LICENSE")), key


def test_production_mounts_the_model_pack_read_only() -> None:
    docs = render("production")
    matching = deployments("production")["matching"]
    model_dir = config_value(docs, matching, "MATCHING_INSIGHTFACE_MODEL_DIR")
    mounts = {
        m["mountPath"]: m for m in matching["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert model_dir in mounts and mounts[model_dir]["readOnly"] is True
    assert config_value(docs, matching, "MATCHING_INSIGHTFACE_REQUIRE_LICENSE") == "true"


def test_dashboard_covers_funnel_latency_errors_outbox_and_dead_messages() -> None:
    docs = render("production")
    config = of_kind(docs, "ConfigMap")["gradphoto-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["gradphoto-dashboard.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "bus_handler_seconds_bucket",
        "bus_queue_lag_seconds_bucket",
        "http_errors_total",
        "outbox_backlog",
        'outcome=~"dead|malformed"',
        "matching_stage_seconds_bucket",
    ):
        assert metric in exprs, metric
    # The funnel: every event type that moves an application to its next state.
    for event in (
        "code.scanned.v1",
        "code.decoded.v1",
        "order.paid.v1",
        "photo.standardized.v1",
        "match.scored.v1",
    ):
        assert f'type="{event}"' in exprs, event
