"""The deploy/ files and the PromQL expressions in them, for the tests that check them."""

import json
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana/dashboards/runaway.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]
