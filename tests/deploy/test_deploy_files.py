"""The files in deploy/: alert rules (through promtool), the Grafana
dashboard, the systemd unit (through systemd-analyze) and the DaemonSet."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netsleuth.cli import build_parser
from netsleuth.metrics import WatchMetrics
from netsleuth.model import EventKind, Finding, NetEvent, Outcome, ProbeResult, Severity

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "tests" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "netsleuth-dashboard.json"
UNIT = DEPLOY / "systemd" / "netsleuth-watch.service"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yaml"

# The capabilities both the systemd unit and the DaemonSet grant, and nothing else.
CAPABILITIES = {"SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "DAC_READ_SEARCH"}


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (scripts/setup installs it)")
    return path


def exported_series_names() -> set[str]:
    """Every sample name a fully fed WatchMetrics exposes."""
    metrics = WatchMetrics()
    metrics.observe_batch([ProbeResult(1, 1, "c1", "dns", "s", Outcome.OK, 1000)])
    metrics.observe_event(NetEvent(1, 1, "host", EventKind.PORT_JOINED, "v1", "br0"))
    metrics.set_bridge("br0", pinned=False)
    metrics.set_invariant("c1", True)
    metrics.set_findings([Finding("r", Severity.CRITICAL, "s", "t", {}, "w", "f")])
    text = generate_latest(metrics.registry).decode()
    return {
        s.name
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("netsleuth_")
    }


def recorded_names() -> set[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def referenced_names(expr: str) -> set[str]:
    return set(re.findall(r"\bnetsleuth[_:][a-zA-Z0-9_:]+", expr))


# -- Prometheus rules ----------------------------------------------------------


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    out = subprocess.run(
        [need("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.prometheus
def test_promtool_test_rules() -> None:
    out = subprocess.run(
        [need("promtool"), "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.prometheus
def test_rule_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The rule tests bind: raising the failure threshold to 10% breaks them."""
    rules = ALERTS.read_text()
    assert "netsleuth:probe_failure_ratio:rate5m > 0.01\n" in rules
    mutated = tmp_path / "prometheus"
    (mutated / "tests").mkdir(parents=True)
    (mutated / "alerts.yml").write_text(
        rules.replace(
            "netsleuth:probe_failure_ratio:rate5m > 0.01\n",
            "netsleuth:probe_failure_ratio:rate5m > 0.1\n",
        )
    )
    shutil.copy(ALERT_TESTS, mutated / "tests" / "alerts_test.yml")
    out = subprocess.run(
        [need("promtool"), "test", "rules", str(mutated / "tests" / "alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "NetsleuthProbeFailureRateHigh" in out.stdout + out.stderr


@pytest.mark.prometheus
def test_promtool_check_example_config() -> None:
    out = subprocess.run(
        [need("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_reference_only_exported_metrics() -> None:
    exported = exported_series_names() | recorded_names()
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            unknown = referenced_names(rule["expr"]) - exported
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert alerts == tested, f"alerts without a promtool test: {alerts - tested}"


# -- Grafana -------------------------------------------------------------------


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in doc["annotations"]["list"] if "expr" in a]
    return exprs


def test_dashboard_parses_and_panels_are_well_formed() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and isinstance(doc["schemaVersion"], int)
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names == ["datasource", "instance"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]


def test_dashboard_references_only_exported_metrics() -> None:
    exported = exported_series_names()
    used: set[str] = set()
    for expr in dashboard_exprs():
        used |= referenced_names(expr)
    assert used, "the dashboard queries no netsleuth metric"
    assert used <= exported, f"not exported: {used - exported}"
    # The failure rate, outages, events and findings the issue asks for are all shown.
    for name in (
        "netsleuth_probe_attempts_total",
        "netsleuth_gateway_stale",
        "netsleuth_events_total",
        "netsleuth_doctor_findings",
        "netsleuth_bridge_mac_pinned",
    ):
        assert name in used


# -- systemd -------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_allows_netlink_and_setns_and_grants_only_the_listed_caps() -> None:
    service = unit()["Service"]
    caps = set(service["CapabilityBoundingSet"].split())
    assert caps == {f"CAP_{c}" for c in CAPABILITIES}
    families = set(service["RestrictAddressFamilies"].split())
    assert {"AF_NETLINK", "AF_UNIX", "AF_INET", "AF_INET6", "AF_PACKET"} == families
    assert set(service["RestrictNamespaces"].split()) == {"net", "mnt"}
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "--metrics ${NETSLEUTH_METRICS}" in service["ExecStart"]
    assert "NETSLEUTH_METRICS=127.0.0.1:9477" in UNIT.read_text()  # loopback by default


def test_unit_command_line_is_one_the_cli_accepts() -> None:
    text = UNIT.read_text()
    env = dict(re.findall(r'^Environment="?(\w+)=(.*?)"?$', text, re.M))
    exec_start = unit()["Service"]["ExecStart"]
    # systemd's expansion: ${VAR} is one word, $VAR splits at white space
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m[1] or m[2]], exec_start)
    argv = shlex.split(expanded)
    assert argv[0] == "/usr/local/bin/netsleuth"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "watch" and args.metrics == "127.0.0.1:9477"
    assert args.quiet and args.probe and args.target
    assert args.retain and args.max_store_size  # bounded by default (docs/store.md)


def test_systemd_analyze_verify_and_security(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at this install.
    exe = Path(sys.executable).with_name("netsleuth")
    if not exe.exists():
        pytest.skip("netsleuth is not installed next to this interpreter")
    copy = tmp_path / "netsleuth-watch.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/netsleuth", str(exe)))
    out = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in out.stderr.splitlines() if str(copy) in line]
    assert out.returncode == 0 and not problems, out.stderr
    sec = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", sec.stdout + sec.stderr)
    if match is None:
        pytest.skip("this systemd-analyze cannot rate a unit offline")
    assert float(match.group(1)) <= 4.5, sec.stdout


# -- Kubernetes ------------------------------------------------------------------


def test_daemonset_grants_only_what_it_documents() -> None:
    docs = list(yaml.safe_load_all(DAEMONSET.read_text()))
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    assert pod["automountServiceAccountToken"] is False
    assert (
        ds["spec"]["selector"]["matchLabels"].items()
        <= ds["spec"]["template"]["metadata"]["labels"].items()
    )
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == CAPABILITIES
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    header = DAEMONSET.read_text().split("---")[0]
    for cap in CAPABILITIES:  # each one is explained
        assert re.search(rf"^#\s+{cap}\s+\S", header, re.M), cap
    args = container["args"]
    listen = args[args.index("--metrics") + 1]
    assert listen == "$(NODE_IP):9477"
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9477"
    assert container["ports"][0]["containerPort"] == 9477
    parsed = build_parser().parse_args(
        [a.replace("$(NODE_IP)", "10.0.0.1") for a in container["args"]]
    )
    assert parsed.command == "watch" and parsed.metrics == "10.0.0.1:9477" and parsed.quiet
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}
