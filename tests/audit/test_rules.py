"""Each audit rule: one snapshot that must trigger it, one that must not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from netsleuth.audit import RULES, HostSnapshot, audit
from netsleuth.audit.snapshot import (
    Address,
    ConntrackStats,
    DockerdProcess,
    Firewall,
    ForwardChain,
    LinkPolicy,
    NatRule,
    NeighStats,
    ResolverView,
    Route,
    UdpSocket,
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
    assert len(ids) == len(set(ids)) == 19
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
    assert found[0].evidence["subnet"] == "198.18.1.0/24"
    other = Firewall(
        backends=("iptables",),
        nat_rules=(NatRule("iptables nat POSTROUTING", "MASQUERADE", "172.17.0.0/16"),),
    )
    assert run("bridge-nat-missing", host(firewall=other))  # NAT for another subnet only


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
    # a FORWARD drop is bridge-forward-blocked's finding, not this rule's
    drop = Firewall(
        backends=("iptables",),
        nat_rules=(NatRule("iptables nat POSTROUTING", "MASQUERADE", "198.18.0.0/15"),),
        forward_chains=(ForwardChain("iptables filter FORWARD", "DROP", ("docker0",)),),
    )
    assert run("bridge-nat-missing", host(firewall=drop)) == []


# 4b
NAT_BR0 = (NatRule("nft ip nat postrouting", "MASQUERADE", "198.18.1.0/24"),)


def fw(*chains: ForwardChain, nat: tuple[NatRule, ...] = NAT_BR0) -> Firewall:
    return Firewall(backends=("nftables",), nat_rules=nat, forward_chains=chains)


def test_bridge_forward_blocked() -> None:
    replies_only = ForwardChain("nft inet filter forward", "drop")  # ct state ... accept only
    [found] = run("bridge-forward-blocked", host(firewall=fw(replies_only)))
    assert found.severity == Severity.CRITICAL and found.subject == "br0"
    assert found.evidence["blocking_chains"] == [
        "nft inet filter forward: policy drop; accepts only replies"
    ]
    assert found.evidence["accept_commands"] == [
        'nft insert rule inet filter forward iifname "br0" accept',
        'nft insert rule inet filter forward oifname "br0" ct state established,related accept',
    ]
    # iptables: DROP policy that accepts another bridge only, in a namespace
    other = ForwardChain("iptables filter FORWARD", "DROP", ("docker0",))
    [found] = run("bridge-forward-blocked", host(netns="lab", firewall=fw(other)))
    assert found.subject == "lab:br0"
    assert found.evidence["accept_commands"][0] == (
        "ip netns exec lab iptables -I FORWARD -i br0 -j ACCEPT"
    )
    # firewalld's way: policy accept, but the chain ends with an unconditional reject
    rejecting = ForwardChain("nft inet firewalld filter_FORWARD", "accept", ("docker0",),
                             drops_all=True)  # fmt: skip
    [found] = run("bridge-forward-blocked", host(firewall=fw(rejecting)))
    assert "unconditional drop/reject" in found.evidence["blocking_chains"][0]


def test_bridge_forward_blocked__negative() -> None:
    accepted = ForwardChain("nft inet filter forward", "drop", ("br0",))
    subnet = ForwardChain("nft inet filter forward", "drop", (), ("198.18.0.0/16",))
    everything = ForwardChain("nft inet filter forward", "drop", accepts_all=True)
    open_chain = ForwardChain("nft inet filter forward", "accept")
    for chain in (accepted, subnet, everything, open_chain):
        assert run("bridge-forward-blocked", host(firewall=fw(chain))) == [], chain
    blocked = ForwardChain("nft inet filter forward", "drop")
    # not NATed (an internal network: dropping its forwarding may be the point)
    assert run("bridge-forward-blocked", host(firewall=fw(blocked, nat=()))) == []
    # forwarding off: ip-forward-off's finding
    off = host(sysctls={"net.ipv4.ip_forward": "0"}, firewall=fw(blocked))
    assert run("bridge-forward-blocked", off) == []
    unreadable = host(firewall=replace(fw(blocked), readable=False))
    assert run("bridge-forward-blocked", unreadable) == []


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
    assert run("conntrack-pressure", host(conntrack=ConntrackStats(count=74, max=100))) == []
    assert run("conntrack-pressure", host(conntrack=None)) == []


# 7
def test_neigh_table_pressure() -> None:
    near = run("neigh-table-pressure", host(neigh=NeighStats(entries=1000, gc_thresh3=1024)))
    assert near[0].severity == Severity.CRITICAL
    fulls = run("neigh-table-pressure", host(neigh=NeighStats(10, 1024, table_fulls=3)))
    assert fulls[0].evidence["table_fulls"] == 3


def test_neigh_table_pressure__negative() -> None:
    assert run("neigh-table-pressure", host(neigh=NeighStats(entries=10, gc_thresh3=1024))) == []
    assert run("neigh-table-pressure", host(neigh=NeighStats(entries=760, gc_thresh3=1024))) == []


# 8
def test_mtu_mismatch() -> None:
    small_port = host(links=(ETH0, bridge(), port("veth0", mtu=1400)))
    assert run("mtu-mismatch", small_port)[0].evidence["ports_with_other_mtu"] == {"veth0": 1400}
    small_egress = host(links=(replace(ETH0, mtu=1450), bridge(), port("veth0")))
    assert run("mtu-mismatch", small_egress)[0].evidence["egress"] == {"eth0": 1450}


def test_mtu_mismatch__negative() -> None:
    assert run("mtu-mismatch", host()) == []
    # a bridge and ports smaller than the egress: nothing is too big for the path
    smaller = host(links=(ETH0, bridge(mtu=1400), port("veth0", mtu=1400)))
    assert run("mtu-mismatch", smaller) == []


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


# 10b
NETNS_CI = ResolverView("netns ci", "/etc/netns/ci/resolv.conf", ("192.0.2.53",))
DOCKER_VIEW = ResolverView("container web", "/proc/7/root/etc/resolv.conf", ("127.0.0.11",))


def inside_ci(**kw: Any) -> HostSnapshot:
    """Namespace ci read from inside: 198.18.1.10/24, default via 198.18.1.1."""
    base: dict[str, Any] = {
        "netns": "ci",
        "links": (port("eth0", master="", kind="veth"),),
        "addresses": (Address("eth0", "198.18.1.10", 24),),
        "routes": (Route("0.0.0.0/0", "eth0", "198.18.1.1"), Route("198.18.1.0/24", "eth0")),
        "sysctls": {},
        "firewall": Firewall(),
        "resolvers": (ResolverView("ci", "/etc/resolv.conf", ("192.0.2.53",)),),
        "kernel": "6.1.0-18-amd64",
    }
    return HostSnapshot(**(base | kw))


def test_resolver_parallel_queries() -> None:
    [found] = run("resolver-parallel-queries", host(resolvers=(NETNS_CI,), kernel="6.1.0-18"))
    assert found.severity == Severity.INFO and found.subject == "netns ci"
    assert found.evidence["nat"] == (
        "queries to 192.0.2.53 are routed by this host and masqueraded (nft ip nat postrouting)"
    )
    assert found.evidence["kernel_resolves_the_clash"] == "yes"
    assert "netsleuth fix resolv-options netns:ci --apply" in found.fix
    # before 5.0 the clash drops one of the two queries: a warning
    [old] = run("resolver-parallel-queries", host(resolvers=(NETNS_CI,), kernel="4.19.0-27"))
    assert old.severity == Severity.WARNING and old.evidence["kernel_resolves_the_clash"] == "no"
    # Docker's embedded resolver is behind a DNAT in the container
    [docker] = run("resolver-parallel-queries", host(resolvers=(DOCKER_VIEW,)))
    assert "DNAT" in docker.evidence["nat"] and "container:web" in docker.fix
    assert docker.evidence["kernel"] == "unknown"
    # read from inside: a private source address leaving by the default route
    [inside] = run("resolver-parallel-queries", inside_ci())
    assert inside.subject == "ci" and "via 198.18.1.1" in inside.evidence["nat"]
    assert "netsleuth fix resolv-options netns:ci --apply" in inside.fix


def test_resolver_parallel_queries__negative() -> None:
    for option in ("single-request-reopen", "single-request", "use-vc"):
        serial = replace(NETNS_CI, options=("ndots:1", option))
        assert run("resolver-parallel-queries", host(resolvers=(serial,))) == [], option
    own = ResolverView("host", "/etc/resolv.conf", ("192.0.2.53",))
    assert run("resolver-parallel-queries", host(resolvers=(own,))) == []  # no NAT for the host
    gateway = replace(NETNS_CI, nameservers=("198.18.1.1",))
    assert run("resolver-parallel-queries", host(resolvers=(gateway,))) == []  # the host answers
    no_nat = host(resolvers=(NETNS_CI,), firewall=Firewall(backends=("nftables",)))
    assert run("resolver-parallel-queries", no_nat) == []
    stub = replace(NETNS_CI, nameservers=("127.0.0.53",))
    assert run("resolver-parallel-queries", host(resolvers=(stub,))) == []
    on_link = ResolverView("ci", "/etc/resolv.conf", ("198.18.1.1",))
    assert run("resolver-parallel-queries", inside_ci(resolvers=(on_link,))) == []


# 10c
K8S_VIEW = ResolverView(
    "netns ci", "/etc/netns/ci/resolv.conf", ("10.96.0.10",), (), ("ndots:5",),
    ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"),
)  # fmt: skip


def test_resolver_search_amplification() -> None:
    [found] = run("resolver-search-amplification", host(resolvers=(K8S_VIEW,)))
    assert found.severity == Severity.WARNING and found.cause == "upstream-rate-limit"
    assert found.evidence["queries_per_lookup"].startswith("8 (A and AAAA for 4 names)")
    assert "netsleuth fix resolv-options netns:ci --ndots 1 --apply" in found.fix
    mild = replace(K8S_VIEW, options=("ndots:2",), search=("a.example", "b.example"))
    [info] = run("resolver-search-amplification", host(resolvers=(mild,)))
    assert info.severity == Severity.INFO and info.evidence["example"] == "example.com"


def test_resolver_search_amplification__negative() -> None:
    one_domain = replace(K8S_VIEW, search=("cluster.local",))
    default_ndots = replace(K8S_VIEW, options=())
    lowered = replace(K8S_VIEW, options=("ndots:5", "ndots:1"))  # the last one wins
    for view in (one_domain, default_ndots, lowered):
        assert run("resolver-search-amplification", host(resolvers=(view,))) == [], view


# 10d
def test_resolver_socket_drops() -> None:
    sock = UdpSocket("127.0.0.53", 53, rx_queue=212992, drops=17)
    snap = host(dns_sockets=(sock,), sysctls={"net.core.rmem_max": "212992"})
    [found] = run("resolver-socket-drops", snap)
    assert found.subject == "udp 127.0.0.53:53" and found.cause == "resolver-overload"
    assert found.evidence == {
        "socket": "udp 127.0.0.53:53",
        "drops_since_opened": 17,
        "rx_queue_bytes_now": 212992,
        "net.core.rmem_max": 212992,
    }
    v6 = run("resolver-socket-drops", host(netns="lab", dns_sockets=(UdpSocket("::1", 53, 0, 1),)))
    assert v6[0].subject == "lab:udp [::1]:53"


def test_resolver_socket_drops__negative() -> None:
    quiet = UdpSocket("127.0.0.53", 53, rx_queue=768, drops=0)  # busy now, never dropped
    assert run("resolver-socket-drops", host(dns_sockets=(quiet,))) == []


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
        "bridge-nat-missing": [host(firewall=Firewall(backends=("nftables",)))],
        "bridge-forward-blocked": [
            host(firewall=fw(ForwardChain("nft inet filter forward", "drop"))),
            host(firewall=fw(ForwardChain("iptables filter FORWARD", "DROP", ("docker0",)))),
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
        "resolver-parallel-queries": [host(resolvers=(NETNS_CI,)), host(resolvers=(DOCKER_VIEW,))],
        "resolver-search-amplification": [host(resolvers=(K8S_VIEW,))],
        "resolver-socket-drops": [host(dns_sockets=(UdpSocket("127.0.0.53", 53, 0, 17),))],
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
