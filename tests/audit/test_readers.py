"""Readers on fixture trees (sysfs/procfs/etc copies) and on live namespaces."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.audit import HostSnapshot, Roots, audit, read_snapshot, read_snapshot_in
from netsleuth.cli import EXIT_FINDINGS, EXIT_OK, main
from netsleuth.docker.daemons import list_daemons
from netsleuth.netns import Namespace, run_in

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audit"


def roots(name: str) -> Roots:
    r = FIXTURES / name
    return Roots(sys=r / "sys", proc=r / "proc", etc=r / "etc", lib=r / "usr" / "lib")


def test_reference_host_tree_is_read() -> None:
    snap = read_snapshot("host", roots("reference-host"), live=False)
    br = snap.link("br-ci")
    assert br is not None and br.kind == "bridge" and br.addr_assign_type == 1
    assert br.stp_state == 1 and br.forward_delay_cs == 1500
    assert {p.name for p in snap.ports("br-ci")} == {"veth1a2b", "veth3c4d"}
    assert snap.link("veth1a2b").kind == "veth"  # type: ignore[union-attr]
    assert snap.link("eth0").kind == ""  # type: ignore[union-attr]  # has a device
    assert snap.conntrack is not None
    assert (snap.conntrack.count, snap.conntrack.insert_failed, snap.conntrack.drop) == (
        250000, 0x21, 3
    )  # fmt: skip
    assert snap.neigh is not None and (snap.neigh.entries, snap.neigh.table_fulls) == (1000, 3)
    assert snap.resolvers[0].nameservers == ("127.0.0.53",)
    assert snap.resolvers[0].loopback_listeners == ()
    (d,) = snap.docker
    assert (d.pid, d.bridge, d.bridge_source) == (4242, "br-ci", "--bridge")
    assert not snap.udev_running
    assert [p.policy for p in snap.link_policies if p.matches_bridges] == ["persistent"]


def test_reference_host_findings() -> None:
    found = audit([read_snapshot("host", roots("reference-host"), live=False)])
    assert {f.rule for f in found} == {
        "bridge-mac-unpinned",
        "bridge-mac-inherited",
        "bridge-arp-notify-off",
        "conntrack-pressure",
        "neigh-table-pressure",
        "resolver-loopback-unreachable",
        "docker-bridge-unpinned",
        "bridge-stp-delay",
        "udev-mac-policy",
    }


def test_clean_host_tree() -> None:
    snap = read_snapshot("host", roots("clean-host"), live=False)
    assert snap.udev_running and snap.resolvers[0].loopback_listeners == ("127.0.0.53",)
    assert audit([snap]) == []


def test_doctor_cli_on_fixture_trees(capsys: pytest.CaptureFixture[str]) -> None:
    ref = str(FIXTURES / "reference-host")
    assert main(["doctor", "--root", ref, "--json", "--fail-on", "critical"]) == EXIT_FINDINGS
    doc = json.loads(capsys.readouterr().out)
    assert set(doc[0]) == {
        "rule",
        "severity",
        "subject",
        "title",
        "evidence",
        "why",
        "fix",
        "cause",
    }
    assert doc[0]["cause"] == "bridge-mac-flap"  # the catalogue entry it bears on
    assert doc[0]["severity"] == "critical"
    assert main(["doctor", "--root", ref, "--rule", "udev-mac-policy", "--fail-on", "warning"]) == (
        EXIT_OK
    )
    out = capsys.readouterr().out
    assert "INFO (1)" in out and "udev-mac-policy" in out
    assert main(["doctor", "--root", str(FIXTURES / "clean-host"), "--fail-on", "info"]) == EXIT_OK


def test_doctor_cli_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--rule", "no-such-rule"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "doctor --help" in err


def test_dockerd_daemon_json_and_short_flag(tmp_path: Path) -> None:
    proc, etc = tmp_path / "proc", tmp_path / "etc"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cmdline").write_bytes(b"dockerd\0-bbr-x\0")
    (proc / "11").mkdir()
    (proc / "11" / "cmdline").write_bytes(b"/usr/sbin/dockerd\0--config-file\0/etc/d2.json\0")
    (proc / "12").mkdir()
    (proc / "12" / "cmdline").write_bytes(b"containerd\0--bridge=nope\0")
    etc.mkdir()
    (etc / "d2.json").write_text('{"bridge": "br-ci", "mtu": 1450}')
    daemons = list_daemons(proc, etc_root=etc)
    assert [(d.pid, d.bridge, d.bridge_source) for d in daemons] == [
        (10, "br-x", "--bridge"),
        (11, "br-ci", f"{etc / 'd2.json'} bridge"),
    ]


@pytest.mark.netns
def test_live_resolver_rule_follows_a_real_listener(make_netns: Callable[..., Path]) -> None:
    path = make_netns("rsv", {"resolv.conf": "nameserver 127.0.0.53\n"})

    def lo_up() -> None:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    run_in(path, lo_up)
    snap = read_snapshot_in(Namespace.at(path))
    assert snap.netns == path.name
    assert snap.resolvers[0].nameservers == ("127.0.0.53",)
    assert [f.rule for f in audit([snap]) if f.rule.startswith("resolver")] == [
        "resolver-loopback-unreachable"
    ]
    sock = run_in(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        sock.bind(("127.0.0.53", 53))
        snap = read_snapshot_in(Namespace.named(path.name))
        assert snap.resolvers[0].loopback_listeners == ("127.0.0.53",)
        assert not [f for f in audit([snap]) if f.rule.startswith("resolver")]
    finally:
        sock.close()


@pytest.mark.netns
def test_host_mode_sees_resolv_conf_of_named_namespaces(make_netns: Callable[..., Path]) -> None:
    path = make_netns("hrs", {"resolv.conf": "nameserver 127.0.0.1\n"})
    snap = read_snapshot("host", namespaces=[path.name], query_docker_api=False)
    (view,) = [v for v in snap.resolvers if v.scope == f"netns {path.name}"]
    assert view.nameservers == ("127.0.0.1",) and view.loopback_listeners == ()


@pytest.mark.netns
def test_docker_embedded_dns_counts_on_any_port(
    make_netns: Callable[..., Path], tmp_path: Path
) -> None:
    """Docker's 127.0.0.11 resolver listens on a random port behind a DNAT
    of port 53; a container's resolv.conf is read by path, as here."""
    from netsleuth.audit.readers import resolver_in

    path = make_netns("dns11")
    ns = Namespace.at(path, "container web")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.11\noptions ndots:0\n")

    def lo_up() -> None:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    run_in(path, lo_up)
    view = resolver_in(ns, resolv)
    assert view is not None and view.loopback_listeners == ()
    unreachable = "resolver-loopback-unreachable"
    found = [f for f in audit([HostSnapshot(resolvers=(view,))]) if f.rule == unreachable]
    assert [f.subject for f in found] == ["container web"]
    sock = run_in(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        sock.bind(("127.0.0.11", 0))
        view = resolver_in(ns, resolv)
        assert view is not None and view.loopback_listeners == ("127.0.0.11",)
        assert [f for f in audit([HostSnapshot(resolvers=(view,))]) if f.rule == unreachable] == []
        # the DNAT to Docker's resolver is NAT: glibc's parallel A/AAAA race it
        assert {f.rule for f in audit([HostSnapshot(resolvers=(view,))])} == {
            "resolver-parallel-queries"
        }
    finally:
        sock.close()
    gone = Namespace.at(make_netns("dns11-gone"), "container gone")
    netns.remove_owned(str(gone.name))
    assert resolver_in(gone, resolv) is None


def test_resolv_conf_is_read_as_glibc_reads_it() -> None:
    from netsleuth.audit.readers import parse_resolv_conf

    text = (
        "# generated\nsearch a.example b.example\nnameserver 192.0.2.53\n"
        "options ndots:5 timeout:2\n; comment\ndomain corp.example\n"
        "nameserver 192.0.2.54\noptions single-request-reopen\n"
    )
    servers, options, search = parse_resolv_conf(text)
    assert servers == ("192.0.2.53", "192.0.2.54")
    assert options == ("ndots:5", "timeout:2", "single-request-reopen")
    assert search == ("corp.example",)  # the last search/domain line wins
    snap = read_snapshot("host", roots("clean-host"), live=False)
    assert [(s.address, s.port, s.drops) for s in snap.dns_sockets] == [("127.0.0.53", 53, 0)]


@pytest.mark.netns
def test_a_dns_socket_that_overflowed_is_found(make_netns: Callable[..., Path]) -> None:
    """A UDP socket on port 53 with a tiny receive buffer that nobody reads:
    the kernel drops what does not fit and counts it in /proc/net/udp."""
    path = make_netns("drops")

    def flood() -> socket.socket:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        server.bind(("127.0.0.1", 53))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for _ in range(200):
                client.sendto(b"q" * 512, ("127.0.0.1", 53))
        return server

    server = run_in(path, flood)
    try:
        snap = read_snapshot_in(Namespace.at(path))
        (sock,) = snap.dns_sockets
        assert sock.address == "127.0.0.1" and sock.port == 53
        assert sock.drops > 0 and sock.rx_queue > 0
        [found] = [f for f in audit([snap]) if f.rule == "resolver-socket-drops"]
        assert found.evidence["drops_since_opened"] == sock.drops
        assert found.subject == f"{path.name}:udp 127.0.0.1:53"
    finally:
        server.close()
    snap = read_snapshot_in(Namespace.at(path))
    assert snap.dns_sockets == () and not [
        f for f in audit([snap]) if f.cause == "resolver-overload"
    ]
