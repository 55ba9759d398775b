"""deploy/ without Docker or a cluster: every file parses, names line up (compose services
and Prometheus targets, Grafana provisioning and the dashboard, Kubernetes selectors,
Secret and ConfigMap references, the HPA target), and every metric the dashboard and the
alerts use is one the code exports."""

import json
import re

import yaml
from prometheus_client import CollectorRegistry

from monitor.api.metrics import ApiMetrics
from schemas.metrics import DetectorMetrics, WorkerMetrics
from tests.deploy_helpers import DEPLOY, alert_exprs, dashboard_exprs


def exported_collectors() -> dict[str, object]:
    """Every sample name (``_total``, ``_bucket``... included) -> its metric object."""
    names: dict[str, object] = {}
    for cls in (ApiMetrics, DetectorMetrics, WorkerMetrics):
        registry = CollectorRegistry()
        cls(registry)
        names.update(registry._names_to_collectors)  # labelled metrics have no samples yet
    return names


def test_compose_services_and_scrape_targets():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {
        "redis",
        "monitor",
        "worker",
        "detector-1",
        "detector-2",
        "prometheus",
        "grafana",
    } <= set(services)
    for name in ("monitor", "worker", "detector-1", "detector-2"):
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert "RUNAWAY_API_TOKEN" in services["monitor"]["environment"]
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert prom["rule_files"] == ["alerts.yml"]
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    for target in targets:
        host, port = target.split(":")
        assert host in services, target
        command = " ".join(services[host]["command"])
        assert port in command, (target, command)
    for mount in services["prometheus"]["volumes"]:
        assert (DEPLOY / mount.split(":")[0]).exists(), mount
    for mount in services["grafana"]["volumes"]:
        assert (DEPLOY / mount.split(":")[0]).is_dir(), mount
    assert (DEPLOY.parent / services["monitor"]["build"]["dockerfile"]).exists()


def test_grafana_provisioning():
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/runaway.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dash = json.loads((DEPLOY / "grafana/dashboards/runaway.json").read_text())
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in (
        "throughput",
        "active episodes",
        "runaway index",
        "flip rate",
        "detection lag",
        "verdict latency",
        "recoveries",
        "consumer",
        "flags raised by flag",
        "verdict actions by flag",
        "fail mode",
    ):
        assert topic in titles, topic
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == uid
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_every_referenced_metric_is_exported():
    exported = exported_collectors()
    exprs = dashboard_exprs() + alert_exprs()
    referenced = {m for e in exprs for m in re.findall(r"\brunaway_[a-z_]+", e)}
    assert referenced
    missing = sorted(m for m in referenced if m not in exported)
    assert missing == [], f"not exported by any registry: {missing}"
    for name in exported:
        assert name.startswith("runaway_")
    for name, metric in exported.items():
        assert not {"episode_id", "episode"} & set(metric._labelnames), name


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_line_up():
    docs = _k8s_docs()
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        assert {"apiVersion", "kind"} <= set(d)
        if d["kind"] != "Kustomization":
            by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    kust = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    for res in kust["resources"]:
        assert (DEPLOY / "k8s" / res).exists(), res
    deployments = by_kind["Deployment"]
    assert {"runaway-monitor", "runaway-detector"} <= set(deployments)
    secrets, configmaps = by_kind["Secret"], by_kind["ConfigMap"]
    pods = [d["spec"]["template"] for d in deployments.values()] + list(by_kind["Pod"].values())
    for dep in deployments.values():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), dep["metadata"]["name"]
    for pod in pods:
        for c in pod["spec"]["containers"]:
            for ref in c.get("envFrom", []):
                assert ref["configMapRef"]["name"] in configmaps
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"]
    for svc in by_kind["Service"].values():
        sel = svc["spec"]["selector"]
        assert any(
            sel.items() <= p["metadata"]["labels"].items()
            for p in (d["spec"]["template"] for d in deployments.values())
        ), sel
    hpa = by_kind["HorizontalPodAutoscaler"]["runaway-detector"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "runaway-detector"
    kinds = {m["type"] for m in hpa["spec"]["metrics"]}
    assert {"Resource", "External"} <= kinds
    sidecar = by_kind["Pod"]["agent-with-runaway-sidecar"]
    assert {c["name"] for c in sidecar["spec"]["containers"]} == {"agent", "runaway-monitor"}
    monitor = deployments["runaway-monitor"]["spec"]["template"]["spec"]["containers"][0]
    assert monitor["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "RUNAWAY_API_TOKEN" in {e["name"] for e in monitor["env"]}  # it binds 0.0.0.0
