"""The exporter: its doctor loop with injected snapshots, and `netsleuth
exporter` for real against a namespace with an unpinned bridge."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from netsleuth.audit import read_targets
from netsleuth.audit.snapshot import HostSnapshot, Link
from netsleuth.cli import exporter_cmd
from netsleuth.errors import InvalidArgument, NetsleuthError
from netsleuth.metrics import WatchMetrics, serve
from netsleuth.metrics.exporter import DoctorLoop


def bridge(name: str, aat: int | None, index: int = 2) -> Link:
    return Link(name, index, "02:00:00:00:00:01", 1500, kind="bridge", addr_assign_type=aat)


def port(name: str, master: str, index: int) -> Link:
    return Link(name, index, "02:00:00:00:00:0a", 1500, kind="veth", master=master)


def test_doctor_round_exports_bridges_and_findings() -> None:
    rounds: list[Sequence[HostSnapshot]] = [
        [HostSnapshot("host", links=(bridge("br0", 1), port("v1", "br0", 3), bridge("br1", 3, 4)))],
        [HostSnapshot("host", links=(bridge("br1", 3, 4),))],
    ]
    reg = CollectorRegistry()
    metrics = WatchMetrics(reg)
    seen: list[int] = []
    loop = DoctorLoop(
        metrics, 60, lambda: rounds.pop(0), on_round=lambda findings: seen.append(len(findings))
    )
    findings = loop.run_once()
    assert findings is not None
    assert "bridge-mac-unpinned" in {f.rule for f in findings}
    pinned = "netsleuth_bridge_mac_pinned"
    assert reg.get_sample_value(pinned, {"netns": "host", "bridge": "br0"}) == 0
    assert reg.get_sample_value(pinned, {"netns": "host", "bridge": "br1"}) == 1
    unpinned = {"rule": "bridge-mac-unpinned", "severity": findings[0].severity.label}
    assert (reg.get_sample_value("netsleuth_doctor_findings", unpinned) or 0) >= 1
    # br0 is gone in the next round: no longer exported; its finding drops to 0.
    loop.run_once()
    assert reg.get_sample_value(pinned, {"netns": "host", "bridge": "br0"}) is None
    assert reg.get_sample_value(pinned, {"netns": "host", "bridge": "br1"}) == 1
    assert reg.get_sample_value("netsleuth_doctor_findings", unpinned) == 0
    assert reg.get_sample_value("netsleuth_doctor_runs_total", {"result": "ok"}) == 2
    assert len(seen) == 2


def test_doctor_round_that_cannot_read_is_counted_and_reported() -> None:
    def fail() -> list[HostSnapshot]:
        raise NetsleuthError("reading the namespace failed: worker died")

    reg = CollectorRegistry()
    errors: list[str] = []
    loop = DoctorLoop(WatchMetrics(reg), 60, fail, on_error=errors.append)
    assert loop.run_once() is None
    assert reg.get_sample_value("netsleuth_doctor_runs_total", {"result": "error"}) == 1
    assert errors == ["doctor could not read the host: reading the namespace failed: worker died"]


def test_loop_thread_runs_rounds_and_close_joins_it() -> None:
    calls = 0

    def read() -> list[HostSnapshot]:
        nonlocal calls
        calls += 1
        return [HostSnapshot("host")]

    before = threading.active_count()
    with DoctorLoop(WatchMetrics(CollectorRegistry()), 0.05, read) as loop:
        loop.start()
        deadline = time.monotonic() + 5
        while calls < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert calls >= 3
    assert threading.active_count() == before


def parse_exporter(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netsleuth")
    exporter_cmd.add_parser(parser.add_subparsers())
    return parser.parse_args(["exporter", *argv])


def test_help_teaches_exposure_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_exporter(["--help"])
    text = capsys.readouterr().out
    assert "loopback" in text and "firewall" in text and "examples:" in text


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(
    url: str, ok: Callable[[dict[tuple[str, tuple[tuple[str, str], ...]], float]], bool]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + 10
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while time.monotonic() < deadline:
        try:
            samples = scrape(url)
        except OSError:
            samples = {}
        if ok(samples):
            break
        time.sleep(0.1)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.netns
def test_doctor_loop_on_a_real_namespace_sees_the_pin(make_netns: Callable[..., Path]) -> None:
    name = make_netns("exp").name
    ip("-n", name, "link", "add", "br0", "type", "bridge")
    ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("-n", name, "link", "set", "v0", "master", "br0")
    for dev in ("br0", "v0", "v1"):
        ip("-n", name, "link", "set", dev, "up")
    metrics = WatchMetrics()
    key = ("netsleuth_bridge_mac_pinned", (("bridge", "br0"), ("netns", name)))
    with (
        serve("127.0.0.1:0", metrics.registry) as server,
        DoctorLoop(metrics, 0.2, lambda: read_targets([name])) as loop,
    ):
        loop.start()  # the first round runs before start() returns
        before = scrape(server.url)
        assert before.get(key) == 0, "an unpinned bridge must be exported as 0"
        findings = {
            dict(labels)["rule"]: v
            for (metric, labels), v in before.items()
            if metric == "netsleuth_doctor_findings"
        }
        assert findings.get("bridge-mac-unpinned", 0) >= 1, findings
        # Pin it (setting the current MAC pins it); a later round sees it.
        mac = subprocess.run(
            ["ip", "-n", name, "-br", "link", "show", "br0"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()[2]
        ip("-n", name, "link", "set", "br0", "address", mac)
        after = wait_for(server.url, lambda s: s.get(key) == 1)
        assert after.get(key) == 1


@pytest.mark.netns
def test_exporter_command_serves_until_its_duration(make_netns: Callable[..., Path]) -> None:
    name = make_netns("cmd").name
    port = free_port()
    args = parse_exporter(
        [
            "--netns",
            name,
            "--doctor-interval",
            "0.5",
            "--duration",
            "2",
            "--metrics",
            f"127.0.0.1:{port}",
        ]
    )
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(args.handler(args)))
    started = time.monotonic()
    thread.start()
    try:
        samples = wait_for(
            f"http://127.0.0.1:{port}/metrics",
            lambda s: ("netsleuth_doctor_runs_total", (("result", "ok"),)) in s,
        )
        assert samples[("netsleuth_doctor_runs_total", (("result", "ok"),))] >= 1
    finally:
        thread.join(timeout=30)
    assert rc == [0]
    assert time.monotonic() - started < 15
    with pytest.raises(OSError):  # the endpoint is closed once the command returns
        scrape(f"http://127.0.0.1:{port}/metrics")


@pytest.mark.netns
def test_exporter_command_runs_probes_through_the_watch_engine(
    make_netns: Callable[..., Path], tmp_path: Path
) -> None:
    name = make_netns("prb").name
    ip("-n", name, "link", "set", "lo", "up")
    port = free_port()
    args = parse_exporter(
        ["--netns", name, "--target", f"netns:{name}", "--probe", "icmp:127.0.0.1",
         "--rate", "10", "--duration", "3", "--store", str(tmp_path / "exp.sqlite"),
         "--metrics", f"127.0.0.1:{port}"]
    )  # fmt: skip
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(args.handler(args)))
    thread.start()
    ok = (
        "netsleuth_probe_attempts_total",
        (
            ("outcome", "ok"),
            ("probe", "icmp:127.0.0.1"),
            ("server", "127.0.0.1"),
            ("target", f"netns:{name}"),
        ),
    )
    try:
        samples = wait_for(f"http://127.0.0.1:{port}/metrics", lambda s: s.get(ok, 0) >= 5)
    finally:
        thread.join(timeout=30)
    assert samples.get(ok, 0) >= 5, sorted(k for k in samples if k[0].startswith("netsleuth"))
    assert ("netsleuth_doctor_runs_total", (("result", "ok"),)) in samples
    assert rc == [0]
    assert (tmp_path / "exp.sqlite").exists()


def test_exporter_rejects_targets_without_probes() -> None:
    args = parse_exporter(["--target", "host"])
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    with pytest.raises(InvalidArgument, match="needs at least one --probe"):
        args.handler(args)
