"""Diagnosis on a host the lab does not build: names, addresses and layout of
its own, one probing namespace, no --host-netns and no host target. The
watch finds the bridge's namespace by itself, adds the control there, records
the path states, and the report names the cause from the first outage on a
store still being written. Real namespaces, dnsmasq, nftables, netlink."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netsleuth.analysis import Analysis, analyze
from netsleuth.model import EventKind, Outcome, StateChange
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine

pytestmark = pytest.mark.netns

BRIDGE = "svcbr7"
SUBNET_GW = "198.19.7.1"
APP_IP = "198.19.7.20"
WAN, ISP = "198.19.200.1", "198.19.200.2"
NAME, ANSWER = "api.svc.test", "198.19.201.5"
APP_PORT_MAC = "02:50:00:00:00:10"
LOW_MAC = "02:00:00:00:00:01"  # lower than the app's port: the bridge takes it


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@dataclass
class Site:
    core: str  # holds the bridge, NAT and the uplink
    app: str  # the one probing namespace
    isp: str  # the resolver, no route back to the bridge subnet
    dnsmasq: subprocess.Popen[bytes]


@pytest.fixture
def site(make_netns: Callable[..., Path]) -> Iterator[Site]:
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is not installed (scripts/setup installs dnsmasq-base)")
    core, app, isp = (make_netns(x).name for x in ("core", "app", "isp"))
    ip("-n", core, "link", "add", BRIDGE, "type", "bridge")  # never given a MAC
    ip("-n", core, "addr", "add", f"{SUBNET_GW}/24", "dev", BRIDGE)
    ip("-n", core, "link", "set", BRIDGE, "up")
    ip(
        "-n",
        core,
        "link",
        "add",
        "vapp",
        "address",
        APP_PORT_MAC,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        app,
    )
    ip("-n", core, "link", "set", "vapp", "master", BRIDGE, "up")
    ip("-n", app, "addr", "add", f"{APP_IP}/24", "dev", "eth0")
    ip("-n", app, "link", "set", "eth0", "up")
    ip("-n", app, "link", "set", "lo", "up")
    ip("-n", app, "route", "add", "default", "via", SUBNET_GW)
    ip("-n", core, "link", "add", "wan0", "type", "veth", "peer", "name", "up0", "netns", isp)
    ip("-n", core, "addr", "add", f"{WAN}/30", "dev", "wan0")
    ip("-n", core, "link", "set", "wan0", "up")
    ip("-n", isp, "addr", "add", f"{ISP}/30", "dev", "up0")
    ip("-n", isp, "link", "set", "up0", "up")
    ip("-n", isp, "link", "set", "lo", "up")
    subprocess.run(
        ["ip", "netns", "exec", core, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True
    )
    subprocess.run(
        ["ip", "netns", "exec", core, "nft", "-f", "-"],
        input=(
            "table ip edge {\n chain post {\n type nat hook postrouting priority 100;\n"
            ' oifname "wan0" ip saddr 198.19.7.0/24 masquerade\n }\n}\n'
        ),
        text=True,
        check=True,
    )
    dnsmasq = subprocess.Popen(
        [
            "ip", "netns", "exec", isp, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={ISP}",
            f"--address=/svc.test/{ANSWER}", "--pid-file", "--user=root", "--cache-size=0",
            "--log-facility=/dev/null",
        ]
    )  # fmt: skip
    try:
        yield Site(core, app, isp, dnsmasq)
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(5)


def churn_once(core: str, join_at: float, stay: float, started: float) -> None:
    """A port with a smaller MAC joins the bridge, stays, and leaves."""
    time.sleep(max(0.0, started + join_at - time.monotonic()))
    ip("-n", core, "link", "add", "vjob1", "address", LOW_MAC, "type", "veth",
       "peer", "name", "vjob1p")  # fmt: skip
    ip("-n", core, "link", "set", "vjob1p", "up")
    ip("-n", core, "link", "set", "vjob1", "master", BRIDGE, "up")
    time.sleep(stay)
    ip("-n", core, "link", "del", "vjob1")


def app_watch(site: Site, store: Path, seconds: float, timeout: float = 1.0) -> WatchEngine:
    """A watch of the app alone (no host target, no --host-netns), 20 DNS probes/s."""
    return WatchEngine(
        WatchConfig(
            targets=(f"netns:{site.app}",),
            probes=(f"dns:{ISP}/{NAME}/A",),
            rate=20,
            timeout=timeout,
            duration=seconds,
        ),
        store,
    )


def _watch_and_report(
    site: Site, tmp_path: Path, seconds: float, fault: Callable[[], None], timeout: float = 1.0
) -> Analysis:
    """Watch the app alone for ``seconds`` while ``fault`` runs, then report."""
    store_path = tmp_path / "watch.sqlite"
    engine = app_watch(site, store_path, seconds, timeout)
    watcher = threading.Thread(target=engine.run)
    watcher.start()
    try:
        fault()
    finally:
        watcher.join()
    with Store(store_path) as store:
        return analyze(store)


def test_the_cause_is_named_from_the_first_outage_on_a_growing_store(
    site: Site, tmp_path: Path
) -> None:
    store_path = tmp_path / "watch.sqlite"
    engine = app_watch(site, store_path, 30)
    started = time.monotonic()
    watcher = threading.Thread(target=engine.run)
    watcher.start()
    churn = threading.Thread(target=churn_once, args=(site.core, 2.0, 2.0, started))
    churn.start()
    reports = []  # (seconds since start, first recovered outage?, verdict)
    try:
        deadline = started + 28
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if not store_path.exists():
                continue
            with Store(store_path) as store:
                a = analyze(store)
            ended = [
                d
                for d in a.episodes
                if d.episode.recovered_ns is not None
                and d.episode.target == f"netns:{site.app}"
                and d.episode.failed >= 5
            ]
            reports.append((time.monotonic() - started, bool(ended), a))
            if ended and a.verdict.cause == "bridge-mac-flap":
                break
    finally:
        churn.join()
        engine.stop_event.set()
        watcher.join()
    first_after = next((r for r in reports if r[1]), None)
    assert first_after is not None, [(round(t), x.verdict.cause) for t, _, x in reports]
    at, _, a = first_after
    v = a.verdict
    assert (v.cause, v.bridge) == ("bridge-mac-flap", BRIDGE), (at, v, a.causes[:3])
    assert v.confidence in ("medium", "high")
    assert a.control == "host"  # found and added by itself
    assert a.localisation == "namespaces"
    flap = next(c for c in a.causes if c.cause == "bridge-mac-flap")
    assert any("began and ended" in e for e in flap.evidence_for)
    # the store knows the bridge and the path without being told
    with Store(store_path) as store:
        facts = store.facts()
        events = store.events()
        targets = {s.target for s in store.series().values()}
    bridges = [f["data"] for f in facts if f["kind"] == "bridge" and f["subject"] == BRIDGE]
    assert bridges and all(b["mac"] for b in bridges) and bridges[0]["pinned"] is False
    paths = [f["data"] for f in facts if f["kind"] == "path"]
    assert paths == [
        {"target": f"netns:{site.app}", "veth": "eth0", "peer": "vapp", "bridge": BRIDGE,
         "subnet": "198.19.7.0/24", "gateway": SUBNET_GW}
    ]  # fmt: skip
    assert targets == {f"netns:{site.app}", "host"}
    entered = [e for e in events if e.kind is EventKind.STATE_ENTERED]
    assert any(e.subject == "gateway-mac-gone" for e in entered)
    assert any(e.subject == "gateway-at-risk" for e in entered)  # warned before it failed
    risk = next(e for e in entered if e.subject == "gateway-at-risk")
    gone = next(e for e in entered if e.subject == "gateway-mac-gone")
    assert risk.wall_ns < gone.wall_ns
    assert isinstance(risk.detail, StateChange) and risk.detail.port == "vjob1"
    with Store(store_path) as store:
        control = [p for p in store.probes() if p.target == "host"]
    assert control and all(p.outcome is Outcome.OK for p in control)


def test_a_bridge_deleted_under_a_running_target_is_named_and_gone_is_not_failed(
    site: Site, tmp_path: Path
) -> None:
    def fault() -> None:
        time.sleep(3)
        ip("-n", site.core, "link", "del", BRIDGE)
        time.sleep(2)
        subprocess.run(["ip", "netns", "del", site.app], check=True)  # the target ends

    a = _watch_and_report(site, tmp_path, 7, fault, timeout=0.5)
    v = a.verdict
    assert v.cause == "path-link-down", (v, a.causes[:3])
    assert v.title == f"bridge {BRIDGE} was deleted: netns:{site.app} lost its gateway"
    app = next(t for t in a.targets if t.target == f"netns:{site.app}")
    assert app.gone_s > 0.5  # gone time is shown ...
    assert app.failed < app.attempts  # ... and not counted as failed
    assert app.failed <= 2.5 * 20  # only the ~2 s between the bridge's end and the target's


@pytest.mark.parametrize("control", [True, False])
def test_watch_cli_says_where_it_found_the_host_and_the_control(
    site: Site, tmp_path: Path, control: bool
) -> None:
    store = tmp_path / "w.sqlite"
    argv = [
        sys.executable, "-m", "netsleuth", "watch", "--target", f"netns:{site.app}",
        "--probe", f"dns:{ISP}/{NAME}/A", "--count", "5", "--rate", "20",
        "--store", str(store), "--json", "--quiet",
    ]  # fmt: skip
    if not control:
        argv.append("--no-control")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["host_netns"] == site.core
    assert out["control"] == ("host" if control else None)
    assert out["at_risk"] == []
    targets = {s["target"] for s in out["series"]}
    assert targets == ({f"netns:{site.app}", "host"} if control else {f"netns:{site.app}"})
    assert all(s["outcomes"] == {"ok": 5} for s in out["series"])


def test_someone_else_answering_for_the_gateway_is_not_blamed_on_the_bridge(
    site: Site, make_netns: Callable[..., Path], tmp_path: Path
) -> None:
    rogue = make_netns("rogue").name
    ip("-n", site.core, "link", "add", "vrogue", "type", "veth", "peer", "name", "eth0",
       "netns", rogue)  # fmt: skip
    ip("-n", site.core, "link", "set", "vrogue", "master", BRIDGE, "up")
    ip("-n", rogue, "link", "set", "eth0", "up")

    def fault() -> None:
        time.sleep(2.5)
        # a second device with the gateway's address speaks up: its ARP request
        # rewrites the app's gateway entry to its own MAC
        ip("-n", rogue, "addr", "add", f"{SUBNET_GW}/24", "dev", "eth0")
        send = f"import socket; socket.socket(2, 2).sendto(b'x', ({APP_IP!r}, 9))"
        subprocess.run(["ip", "netns", "exec", rogue, sys.executable, "-c", send], check=True)
        time.sleep(3.0)
        ip("-n", rogue, "addr", "del", f"{SUBNET_GW}/24", "dev", "eth0")  # it goes quiet

    a = _watch_and_report(site, tmp_path, 16, fault)
    named = {c.cause for c in a.causes if c.named}
    assert a.verdict.cause == "gateway-arp-conflict", (a.verdict, a.causes[:3])
    assert "bridge-mac-flap" not in named
    assert all(b.mac_changes == 0 for b in a.bridges if b.name == BRIDGE)


def test_a_nat_rule_that_goes_missing_is_named(site: Site, tmp_path: Path) -> None:
    def fault() -> None:
        time.sleep(3.0)
        subprocess.run(["ip", "netns", "exec", site.core, "nft", "delete", "table", "ip", "edge"],
                       check=True)  # fmt: skip
        time.sleep(2.0)
        subprocess.run(
            ["ip", "netns", "exec", site.core, "nft", "-f", "-"],
            input=(
                "table ip edge {\n chain post {\n type nat hook postrouting priority 100;\n"
                ' oifname "wan0" ip saddr 198.19.7.0/24 masquerade\n }\n}\n'
            ),
            text=True,
            check=True,
        )

    a = _watch_and_report(site, tmp_path, 9, fault)
    assert a.verdict.cause == "nat-missing", (a.verdict, a.causes[:3])
    nat = next(s for s in a.states if s.family == "nat-missing")
    assert len(nat.aligned) >= 1
    assert "bridge-mac-flap" not in {c.cause for c in a.causes if c.named}
