"""infra/: the alert rules (promtool where installed, else a schema check), their unit tests, the
Prometheus config, the Grafana dashboard and provisioning, and the monitoring compose overlay.
Every metric name they mention must be one that services/metrics.py declares."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.metrics import METRICS

INFRA = Path(__file__).resolve().parent.parent / "infra"
ALERTS = INFRA / "prometheus" / "alerts.yml"
ALERT_TESTS = INFRA / "prometheus" / "alerts_test.yml"
PROMETHEUS = INFRA / "prometheus" / "prometheus.yml"
DASHBOARD = INFRA / "grafana" / "tgcast-dashboard.json"
OVERLAY = INFRA / "docker-compose.monitoring.yml"
_DURATION = re.compile(r"^\d+[smhd]$")
_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The tgcast metrics an expression reads, histogram series mapped back to their family."""
    names = set()
    for name in re.findall(r"\btgcast_[a-z_]+\b", expr):
        for suffix in _SUFFIXES:
            family = name.removesuffix(suffix)
            if family != name and METRICS.get(family) and METRICS[family].kind == "histogram":
                name = family
        names.add(name)
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


# ---- alert rules ---------------------------------------------------------------------------------


def test_alert_rules_schema() -> None:
    doc = load_yaml(ALERTS)
    assert set(doc) == {"groups"}
    names = set()
    for group in doc["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"]) and rule["alert"] not in names
            names.add(rule["alert"])
            assert _DURATION.match(rule["for"])
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["expr"].count("(") == rule["expr"].count(")")
            used = metric_names(rule["expr"])
            assert used and used <= set(METRICS), used - set(METRICS)


def test_the_required_alerts_are_there() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    lag = by_name["TgcastStartLagHigh"]
    assert "0.95" in lag["expr"] and "> 60" in lag["expr"] and lag["for"] == "5m"
    ratio = by_name["TgcastDeliveryFailureRatioHigh"]
    assert "> 0.2" in ratio["expr"] and ratio["for"] == "10m"
    assert "> 300" in by_name["TgcastNoTick"]["expr"]  # 5 minutes without a tick
    assert by_name["TgcastQueueGrowing"]["for"] == "15m"
    assert "flood_paused" in by_name["TgcastManyAccountsFloodPaused"]["expr"]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the schema checks ran")
    return path


def test_promtool_check_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_alert_unit_tests() -> None:
    """Each alert fires on the series it is meant for and stays quiet before its `for` runs out."""
    result = subprocess.run([_promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    tested = {case["alertname"] for test in load_yaml(ALERT_TESTS)["tests"] for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in rules()}


def test_prometheus_config(tmp_path: Path) -> None:
    doc = load_yaml(PROMETHEUS)
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    [job] = doc["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["web:8000"]
    promtool = shutil.which("promtool")
    if promtool:
        # The rule file's path is the container's; point a copy at the checkout's to check the whole config.
        copy = tmp_path / "prometheus.yml"
        copy.write_text(PROMETHEUS.read_text().replace("/etc/prometheus/alerts.yml", str(ALERTS)))
        result = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


# ---- Grafana -------------------------------------------------------------------------------------


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_loads_and_is_well_formed() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and isinstance(doc["schemaVersion"], int)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["datasource"]["uid"] == "prometheus" and panel["targets"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_panel_reads_declared_metrics_and_every_metric_is_shown() -> None:
    shown: set[str] = set()
    for panel in panels():
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used, f"{panel['title']}: no tgcast metric in {target['expr']!r}"
            assert used <= set(METRICS), f"{panel['title']}: undeclared {used - set(METRICS)}"
            assert target["expr"].count("(") == target["expr"].count(")")
            shown |= used
    assert shown == set(METRICS), f"not on the dashboard: {set(METRICS) - shown}"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    [source] = load_yaml(INFRA / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert (source["uid"], source["type"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    [provider] = load_yaml(INFRA / "grafana/provisioning/dashboards/tgcast.yml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_monitoring_overlay_mounts_what_it_provisions() -> None:
    services = load_yaml(OVERLAY)["services"]
    assert {"prometheus", "grafana", "rq-dashboard"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (INFRA / source).exists(), f"{name} mounts missing {source}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    grafana_env = services["grafana"]["environment"]
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert ":?" in grafana_env["GF_SECURITY_ADMIN_PASSWORD"]  # no default password
    rq_env = services["rq-dashboard"]["environment"]
    assert rq_env["RQ_DASHBOARD_USERNAME"] and ":?" in rq_env["RQ_DASHBOARD_PASSWORD"]  # basic auth, required
