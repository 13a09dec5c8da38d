"""The texts of doctor findings come from the catalogue of causes, and every
finding names the cause it bears on."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from netsleuth.audit import RULES, HostSnapshot, Rule, audit
from netsleuth.audit.rules import fix_target
from netsleuth.audit.snapshot import (
    ConntrackStats,
    DockerdProcess,
    Firewall,
    ForwardChain,
    NeighStats,
    ResolverView,
    Route,
    UdpSocket,
)
from netsleuth.causes import CAUSES, FIELDS
from netsleuth.model import Finding
from netsleuth_testing.snapshots import BR_MAC, ETH0, PORT_MAC, bridge, host, port


def snapshots() -> list[HostSnapshot]:
    """Together they make every rule produce every kind of finding it has."""
    drop = ForwardChain("iptables filter FORWARD", "DROP")
    k8s = ResolverView("netns ci", "/etc/netns/ci/resolv.conf", ("10.96.0.10",), (),
                       ("ndots:5",), ("a.svc", "svc", "cluster.local"))  # fmt: skip
    bases = [
        host(),
        host(links=(ETH0, bridge(mac=PORT_MAC), port("veth0"))),
        host(links=(ETH0, bridge(mac="00:00:00:00:00:00"))),
        host(firewall=Firewall(backends=("nftables",))),
        host(firewall=replace(host().firewall, forward_chains=(drop,))),
        host(sysctls={"net.ipv4.ip_forward": "0"}),
        host(conntrack=ConntrackStats(count=95, max=100)),
        host(conntrack=ConntrackStats(1, 100, 4, 0, 9, 0, 2.0)),
        host(neigh=NeighStats(entries=1000, gc_thresh3=1024)),
        host(links=(ETH0, bridge(), port("veth0", mtu=1400))),
        host(
            links=(ETH0, bridge(), port("veth0"), port("veth1")),
            sysctls={"net.bridge.bridge-nf-call-iptables": "1"},
            firewall=Firewall(forward_chains=(drop,)),
        ),
        host(docker=(DockerdProcess(pid=1, argv=("dockerd",)),), sysctls={}),
        host(resolvers=(ResolverView("netns ci", "/etc/resolv.conf", ("127.0.0.53",), ()),)),
        host(resolvers=(ResolverView("netns ci", "/etc/resolv.conf", ("192.0.2.53",)),)),
        host(resolvers=(replace(k8s, scope="host"), k8s)),
        host(dns_sockets=(UdpSocket("127.0.0.53", 53, 0, 3),)),
        host(docker=(DockerdProcess(pid=7, argv=("dockerd",), network_bridges=("br0",)),)),
        host(
            sysctls={"net.ipv4.conf.all.rp_filter": "1"},
            routes=(*host().routes, Route("10.9.0.0/16", "br0", "198.18.1.7")),
        ),
        host(routes=(*host().routes, Route("198.18.0.0/16", "tun0", "10.8.0.1"))),
        host(udev_running=False),
        host(links=(ETH0, bridge(stp_state=1, forward_delay_cs=1500), port("veth0"))),
    ]
    return [s for base in bases for s in (base, replace(base, netns="lab"))]


def _target(snap: HostSnapshot, subject: str) -> str:
    """What the resolver rules name for ``netsleuth fix resolv-options``."""
    views = [v for v in snap.resolvers if v.scope == subject]
    if not views:
        return ""
    return fix_target(snap, views[0])


def causes_of(rule: Rule) -> set[str]:
    """The causes a rule's findings may bear on: its ``cause`` and any
    ``*_cause`` of a kind of finding that bears on another."""
    return {getattr(rule, f.name) for f in fields(rule) if f.name.endswith("cause")}


@pytest.fixture(scope="module")
def findings() -> list[tuple[HostSnapshot, Finding]]:
    return [(snap, f) for snap in snapshots() for f in audit([snap])]


def test_every_rule_and_cause_of_the_catalogue_is_seen(
    findings: list[tuple[HostSnapshot, Finding]],
) -> None:
    seen = {(f.rule, f.cause) for _, f in findings}
    listed = {(rule, c.id) for c in CAUSES.values() for rule in c.doctor_rules}
    assert seen == listed
    assert {f.rule for _, f in findings} == {r.id for r in RULES}


def test_each_finding_bears_on_a_cause_of_its_rule(
    findings: list[tuple[HostSnapshot, Finding]],
) -> None:
    rules = {r.id: r for r in RULES}
    for _, f in findings:
        assert f.cause in causes_of(rules[f.rule]), (f.rule, f.cause)


def test_why_and_fix_are_the_catalogues_texts_filled_in(
    findings: list[tuple[HostSnapshot, Finding]],
) -> None:
    for snap, f in findings:
        entry = CAUSES[f.cause]
        mac = str(f.evidence.get("mac", ""))
        values = {
            "bridge": "br0",
            "subnet": "198.18.1.0/24",
            "netns_flag": "" if snap.netns == "host" else f" --netns {snap.netns}",
            "ip": "ip" if snap.netns == "host" else f"ip -n {snap.netns}",
            "mac": "02:XX:XX:XX:XX:XX" if mac == "00:00:00:00:00:00" else mac,
            "forward_delay": "15",
            "target": _target(snap, f.subject),
        }
        assert f.why == entry.finding_why(f.rule, **values), f.rule
        assert f.fix == entry.finding_fix(f.rule, **values), f.rule
        for name in FIELDS:
            assert f"<{name}>" not in f.why + f.fix, (f.rule, name)


def test_the_pin_fix_names_the_namespace_and_the_mac() -> None:
    [rule] = [r for r in RULES if r.id == "bridge-mac-unpinned"]
    [finding] = rule.check(replace(host(), netns="lab"))
    assert finding.fix.startswith("netsleuth fix bridge br0 --netns lab --apply  (pins it now")
    assert f"ip -n lab link set dev br0 address {BR_MAC} (setting any MAC" in finding.fix
