"""Each audit rule: one snapshot that must trigger it, one that must not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from netsleuth.audit import RULES, HostSnapshot, audit
from netsleuth.audit.snapshot import (
    ConntrackStats,
    DockerdProcess,
    Firewall,
    ForwardChain,
    LinkPolicy,
    NatRule,
    NeighStats,
    ResolverView,
    Route,
)
from netsleuth.model import Finding, Severity
from netsleuth_testing.snapshots import ETH0, PORT_MAC, bridge, host, port


def pinned_host(**kw: Any) -> HostSnapshot:
    return host(links=(ETH0, bridge(aat=3), port("veth0")), **kw)


def run(rule_id: str, snap: HostSnapshot) -> list[Finding]:
    rule = next(r for r in RULES if r.id == rule_id)
    return rule.check(snap)


def test_rule_ids_are_unique_and_all_tested() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) == 15
    tested = {name.split("__")[0] for name in globals() if name.startswith("test_")}
    for rid in ids:
        assert f"test_{rid.replace('-', '_')}" in tested, rid


# 1
def test_bridge_mac_unpinned() -> None:
    found = run("bridge-mac-unpinned", host())
    assert [f.subject for f in found] == ["br0"]
    assert found[0].severity == Severity.CRITICAL  # veth ports come and go
    assert found[0].evidence["addr_assign_type"] == "1 (random)"
    # a physical port only: still unpinned, but less churn
    phys = host(links=(ETH0, bridge(), port("eth1", kind="")))
    assert run("bridge-mac-unpinned", phys)[0].severity == Severity.WARNING


def test_bridge_mac_unpinned__negative() -> None:
    assert run("bridge-mac-unpinned", pinned_host()) == []
    idle = host(links=(ETH0, bridge()), addresses=())  # no ports, no address
    assert run("bridge-mac-unpinned", idle) == []
    unknown = host(links=(ETH0, bridge(aat=None), port("veth0")))
    assert run("bridge-mac-unpinned", unknown) == []


# 2
def test_bridge_mac_inherited() -> None:
    snap = host(links=(ETH0, bridge(mac=PORT_MAC), port("veth0")))
    found = run("bridge-mac-inherited", snap)
    assert found[0].evidence["port_with_same_mac"] == ["veth0"]
    assert found[0].severity == Severity.WARNING
    empty = host(links=(ETH0, bridge(mac="00:00:00:00:00:00")))
    assert run("bridge-mac-inherited", empty)[0].severity == Severity.INFO


def test_bridge_mac_inherited__negative() -> None:
    assert run("bridge-mac-inherited", host()) == []  # own random MAC
    pinned_same = host(links=(ETH0, bridge(aat=3, mac=PORT_MAC), port("veth0")))
    assert run("bridge-mac-inherited", pinned_same) == []


# 3
def test_bridge_arp_notify_off() -> None:
    found = run("bridge-arp-notify-off", host())
    assert found[0].evidence == {
        "net.ipv4.conf.br0.arp_notify": 0,
        "addr_assign_type": "1 (random)",
    }


def test_bridge_arp_notify_off__negative() -> None:
    on = host(sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.br0.arp_notify": "1"})
    assert run("bridge-arp-notify-off", on) == []
    assert run("bridge-arp-notify-off", pinned_host()) == []


# 4
def test_bridge_nat_missing() -> None:
    found = run("bridge-nat-missing", host(firewall=Firewall(backends=("nftables",))))
    assert [f.title for f in found] == ["Private bridge subnet leaves the host without NAT"]
    drop = Firewall(
        backends=("iptables",),
        nat_rules=(NatRule("iptables nat POSTROUTING", "MASQUERADE", "198.18.0.0/15"),),
        forward_chains=(ForwardChain("iptables filter FORWARD", "DROP", ("docker0",)),),
    )
    found = run("bridge-nat-missing", host(firewall=drop))
    assert [f.evidence.get("drop_policy_chains") for f in found] == [["iptables filter FORWARD"]]


def test_bridge_nat_missing__negative() -> None:
    assert run("bridge-nat-missing", host()) == []
    wide = Firewall(
        backends=("iptables",),
        nat_rules=(NatRule("iptables nat POSTROUTING", "MASQUERADE", "", out_not="br0"),),
        forward_chains=(ForwardChain("iptables filter FORWARD", "DROP", ("br0",)),),
    )
    assert run("bridge-nat-missing", host(firewall=wide)) == []
    unreadable = host(firewall=Firewall(readable=False))
    assert run("bridge-nat-missing", unreadable) == []


# 5
def test_ip_forward_off() -> None:
    found = run("ip-forward-off", host(sysctls={"net.ipv4.ip_forward": "0"}))
    assert found[0].severity == Severity.CRITICAL and found[0].evidence["bridges"] == ["br0"]


def test_ip_forward_off__negative() -> None:
    assert run("ip-forward-off", host()) == []
    no_bridge = host(sysctls={"net.ipv4.ip_forward": "0"}, links=(ETH0,))
    assert run("ip-forward-off", no_bridge) == []


# 6
def test_conntrack_pressure() -> None:
    full = run("conntrack-pressure", host(conntrack=ConntrackStats(count=95, max=100)))
    assert full[0].severity == Severity.CRITICAL
    growing = ConntrackStats(
        count=1, max=100, insert_failed=4, drop=0, insert_failed_later=9, drop_later=0,
        sample_seconds=2.0,
    )  # fmt: skip
    found = run("conntrack-pressure", host(conntrack=growing))
    assert found[0].severity == Severity.WARNING
    assert found[0].evidence["insert_failed_after_2s"] == 9


def test_conntrack_pressure__negative() -> None:
    assert run("conntrack-pressure", host(conntrack=ConntrackStats(count=10, max=100))) == []
    assert run("conntrack-pressure", host(conntrack=None)) == []


# 7
def test_neigh_table_pressure() -> None:
    near = run("neigh-table-pressure", host(neigh=NeighStats(entries=1000, gc_thresh3=1024)))
    assert near[0].severity == Severity.CRITICAL
    fulls = run("neigh-table-pressure", host(neigh=NeighStats(10, 1024, table_fulls=3)))
    assert fulls[0].evidence["table_fulls"] == 3


def test_neigh_table_pressure__negative() -> None:
    assert run("neigh-table-pressure", host(neigh=NeighStats(entries=10, gc_thresh3=1024))) == []


# 8
def test_mtu_mismatch() -> None:
    small_port = host(links=(ETH0, bridge(), port("veth0", mtu=1400)))
    assert run("mtu-mismatch", small_port)[0].evidence["ports_with_other_mtu"] == {"veth0": 1400}
    small_egress = host(links=(replace(ETH0, mtu=1450), bridge(), port("veth0")))
    assert run("mtu-mismatch", small_egress)[0].evidence["egress"] == {"eth0": 1450}


def test_mtu_mismatch__negative() -> None:
    assert run("mtu-mismatch", host()) == []


# 9
def test_br_netfilter_mismatch() -> None:
    drop = Firewall(forward_chains=(ForwardChain("iptables filter FORWARD", "DROP"),))
    snap = host(
        links=(ETH0, bridge(), port("veth0"), port("veth1")),
        sysctls={"net.bridge.bridge-nf-call-iptables": "1"},
        firewall=drop,
    )
    assert run("br-netfilter-mismatch", snap)[0].subject == "br0"
    docker = host(docker=(DockerdProcess(pid=1, argv=("dockerd",)),), sysctls={})
    found = run("br-netfilter-mismatch", docker)
    assert "not loaded" in found[0].evidence["net.bridge.bridge-nf-call-iptables"]


def test_br_netfilter_mismatch__negative() -> None:
    accept = Firewall(forward_chains=(ForwardChain("nft inet filter forward", "accept"),))
    snap = host(
        links=(ETH0, bridge(), port("veth0"), port("veth1")),
        sysctls={"net.bridge.bridge-nf-call-iptables": "1"},
        firewall=accept,
    )
    assert run("br-netfilter-mismatch", snap) == []
    assert run("br-netfilter-mismatch", host(sysctls={})) == []  # no Docker: nothing to say


# 10
def test_resolver_loopback_unreachable() -> None:
    view = ResolverView("netns ci", "/etc/resolv.conf", ("127.0.0.53",), ())
    found = run("resolver-loopback-unreachable", host(resolvers=(view,)))
    assert found[0].severity == Severity.CRITICAL and found[0].evidence["unreachable"] == [
        "127.0.0.53"
    ]
    mixed = ResolverView("netns ci", "/etc/resolv.conf", ("127.0.0.53", "198.18.0.1"), ())
    assert run("resolver-loopback-unreachable", host(resolvers=(mixed,)))[0].severity == (
        Severity.WARNING
    )


def test_resolver_loopback_unreachable__negative() -> None:
    served = ResolverView("host", "/etc/resolv.conf", ("127.0.0.53",), ("127.0.0.53",))
    wildcard = ResolverView("netns a", "/etc/resolv.conf", ("127.0.0.1",), ("0.0.0.0",))
    remote = ResolverView("netns b", "/etc/resolv.conf", ("198.18.0.1",), ())
    snap = host(resolvers=(served, wildcard, remote))
    assert run("resolver-loopback-unreachable", snap) == []


# 11
def test_docker_bridge_unpinned() -> None:
    d = DockerdProcess(pid=4242, argv=("dockerd", "--bridge=br0"), bridge="br0",
                     bridge_source="--bridge")  # fmt: skip
    found = run("docker-bridge-unpinned", host(docker=(d,)))
    assert found[0].evidence["used_by"] == "dockerd pid 4242 --bridge"
    via_net = DockerdProcess(pid=7, argv=("dockerd",), network_bridges=("br0",))
    assert run("docker-bridge-unpinned", host(docker=(via_net,)))


def test_docker_bridge_unpinned__negative() -> None:
    d = DockerdProcess(pid=4242, argv=("dockerd", "-b", "br0"), bridge="br0", bridge_source="-b")
    assert run("docker-bridge-unpinned", pinned_host(docker=(d,))) == []
    assert run("docker-bridge-unpinned", host()) == []  # no dockerd


# 12
def test_rp_filter_strict_asymmetric() -> None:
    snap = host(
        sysctls={"net.ipv4.conf.all.rp_filter": "1"},
        routes=(*host().routes, Route("10.9.0.0/16", "br0", "198.18.1.7")),
    )
    assert "10.9.0.0/16" in run("rp-filter-strict-asymmetric", snap)[0].evidence["asymmetry"][0]


def test_rp_filter_strict_asymmetric__negative() -> None:
    routes = (*host().routes, Route("10.9.0.0/16", "br0", "198.18.1.7"))
    loose = host(sysctls={"net.ipv4.conf.all.rp_filter": "2"}, routes=routes)
    assert run("rp-filter-strict-asymmetric", loose) == []
    symmetric = host(sysctls={"net.ipv4.conf.all.rp_filter": "1"})
    assert run("rp-filter-strict-asymmetric", symmetric) == []


# 13
def test_subnet_overlap() -> None:
    snap = host(routes=(*host().routes, Route("198.18.0.0/16", "tun0", "10.8.0.1")))
    found = run("subnet-overlap", snap)
    assert found[0].evidence["overlapping_routes"] == ["198.18.0.0/16 via 10.8.0.1 dev tun0"]


def test_subnet_overlap__negative() -> None:
    assert run("subnet-overlap", host()) == []


# 14
def test_udev_mac_policy() -> None:
    policy = LinkPolicy("/usr/lib/systemd/network/99-default.link", "persistent", True)
    found = run("udev-mac-policy", host(link_policies=(policy,), udev_running=False))
    assert "no udev" in found[0].evidence["reason"]
    no_policy = run("udev-mac-policy", host(udev_running=True))
    assert "unset" in no_policy[0].evidence["reason"]


def test_udev_mac_policy__negative() -> None:
    policy = LinkPolicy("/usr/lib/systemd/network/99-default.link", "persistent", True)
    assert run("udev-mac-policy", host(link_policies=(policy,), udev_running=True)) == []
    assert run("udev-mac-policy", pinned_host(udev_running=False)) == []


# 15 (from real trackers)
def test_bridge_stp_delay() -> None:
    snap = host(links=(ETH0, bridge(stp_state=1, forward_delay_cs=1500), port("veth0")))
    assert run("bridge-stp-delay", snap)[0].evidence == {"stp_state": 1, "forward_delay_s": 15.0}


def test_bridge_stp_delay__negative() -> None:
    assert run("bridge-stp-delay", host()) == []
    quick = host(links=(ETH0, bridge(stp_state=1, forward_delay_cs=0), port("veth0")))
    assert run("bridge-stp-delay", quick) == []


def test_audit_orders_by_severity_and_labels_namespaces() -> None:
    snap = host(netns="lab", sysctls={"net.ipv4.ip_forward": "0"})
    found = audit([snap])
    assert [f.severity for f in found] == sorted((f.severity for f in found), reverse=True)
    assert {f.subject.split(":")[0] for f in found} == {"lab"}
    assert "--netns lab" in next(f for f in found if f.rule == "bridge-mac-unpinned").fix


def triggering() -> dict[str, list[HostSnapshot]]:
    """Snapshots that trigger each rule: the cases of its test above."""
    docker = DockerdProcess(pid=4242, argv=("dockerd", "--bridge=br0"), bridge="br0",
                            bridge_source="--bridge")  # fmt: skip
    policy = LinkPolicy("/usr/lib/systemd/network/99-default.link", "persistent", True)
    two_ports = (ETH0, bridge(), port("veth0"), port("veth1"))
    return {
        "bridge-mac-unpinned": [host(), host(links=(ETH0, bridge(), port("eth1", kind="")))],
        "bridge-mac-inherited": [
            host(links=(ETH0, bridge(mac=PORT_MAC), port("veth0"))),
            host(links=(ETH0, bridge(mac="00:00:00:00:00:00"))),
        ],
        "bridge-arp-notify-off": [host()],
        "bridge-nat-missing": [
            host(firewall=Firewall(backends=("nftables",))),
            host(
                firewall=Firewall(
                    backends=("iptables",),
                    nat_rules=(NatRule("iptables nat POSTROUTING", "MASQUERADE", "198.18.0.0/15"),),
                    forward_chains=(ForwardChain("iptables filter FORWARD", "DROP", ("docker0",)),),
                )
            ),
        ],
        "ip-forward-off": [host(sysctls={"net.ipv4.ip_forward": "0"})],
        "conntrack-pressure": [
            host(conntrack=ConntrackStats(count=95, max=100)),
            host(conntrack=ConntrackStats(1, 100, 4, 0, 9, 0, 2.0)),
        ],
        "neigh-table-pressure": [
            host(neigh=NeighStats(entries=1000, gc_thresh3=1024)),
            host(neigh=NeighStats(10, 1024, table_fulls=3)),
        ],
        "mtu-mismatch": [
            host(links=(ETH0, bridge(), port("veth0", mtu=1400))),
            host(links=(replace(ETH0, mtu=1450), bridge(), port("veth0"))),
        ],
        "br-netfilter-mismatch": [
            host(
                links=two_ports,
                sysctls={"net.bridge.bridge-nf-call-iptables": "1"},
                firewall=Firewall(
                    forward_chains=(ForwardChain("iptables filter FORWARD", "DROP"),)
                ),
            ),
            host(docker=(DockerdProcess(pid=1, argv=("dockerd",)),), sysctls={}),
        ],
        "resolver-loopback-unreachable": [
            host(resolvers=(ResolverView("netns ci", "/etc/resolv.conf", ("127.0.0.53",), ()),)),
        ],
        "docker-bridge-unpinned": [
            host(docker=(docker,)),
            host(docker=(DockerdProcess(pid=7, argv=("dockerd",), network_bridges=("br0",)),)),
        ],
        "rp-filter-strict-asymmetric": [
            host(
                sysctls={"net.ipv4.conf.all.rp_filter": "1"},
                routes=(*host().routes, Route("10.9.0.0/16", "br0", "198.18.1.7")),
            )
        ],
        "subnet-overlap": [
            host(routes=(*host().routes, Route("198.18.0.0/16", "tun0", "10.8.0.1"))),
        ],
        "udev-mac-policy": [
            host(link_policies=(policy,), udev_running=False),
            host(udev_running=True),
        ],
        "bridge-stp-delay": [
            host(links=(ETH0, bridge(stp_state=1, forward_delay_cs=1500), port("veth0"))),
        ],
    }


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_finding_is_complete(rule: Any) -> None:
    snaps = triggering().get(rule.id)
    assert snaps, f"no snapshot in triggering() triggers {rule.id}: add one"
    for snap in (s for base in snaps for s in (base, replace(base, netns="lab"))):
        found = rule.check(snap)
        assert found, f"{rule.id} found nothing in its triggering snapshot ({snap.netns})"
        for f in found:
            assert f.rule == rule.id and f.why and f.fix and f.evidence and f.subject
            assert f.title and isinstance(f.severity, Severity)


def test_every_triggering_snapshot_belongs_to_a_rule() -> None:
    assert set(triggering()) == {r.id for r in RULES}
