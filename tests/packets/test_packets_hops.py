"""`capture --target`: the hops of a target found from the kernel's topology,
in namespaces of our own built like a container host."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.cli import main
from netsleuth.errors import TargetNotFound
from netsleuth.packets.capture import CaptureSpec
from netsleuth.packets.hops import target_specs

pytestmark = pytest.mark.netns


def container_host(make_netns: Callable[..., Path], tag: str) -> tuple[str, Path]:
    """A host namespace (bridge ``br0``, port ``port0``, uplink ``up0`` with the
    default route) and a container namespace whose ``eth0`` is port0's peer.
    Returns the host's name and the container's path."""
    host = make_netns(f"{tag}-host").name
    ctr = make_netns(f"{tag}-ctr")
    up = make_netns(f"{tag}-up").name
    with IPRoute(netns=host) as ipr:
        ipr.link("add", ifname="br0", kind="bridge")
        br = ipr.link_lookup(ifname="br0")[0]
        ipr.addr("add", index=br, address="198.18.40.1", prefixlen=24)
        ipr.link("add", ifname="port0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ctr.name})
        ipr.link("set", index=ipr.link_lookup(ifname="port0")[0], master=br, state="up")
        ipr.link("add", ifname="up0", kind="veth", peer={"ifname": "wan0", "net_ns_fd": up})
        up0 = ipr.link_lookup(ifname="up0")[0]
        ipr.addr("add", index=up0, address="198.18.41.1", prefixlen=30)
        for idx in (br, up0):
            ipr.link("set", index=idx, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway="198.18.41.2")
    with IPRoute(netns=ctr.name) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=eth0, address="198.18.40.10", prefixlen=24)
        ipr.link("set", index=eth0, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway="198.18.40.1")
    return host, ctr


def test_target_hops_are_peer_bridge_and_uplink(make_netns: Callable[..., Path]) -> None:
    host, ctr = container_host(make_netns, "h1")
    assert target_specs(str(ctr)) == [
        CaptureSpec(host, "port0", "client"),
        CaptureSpec(host, "br0", "bridge"),
        CaptureSpec(host, "up0", "uplink"),
    ]


def test_identical_hosts_are_told_apart_by_namespace_id(
    make_netns: Callable[..., Path],
) -> None:
    # built the same way, both hosts have the same interface indexes: only the
    # namespace id the container gives its peer's namespace tells which is whose
    first_host, first_ctr = container_host(make_netns, "h1")
    second_host, second_ctr = container_host(make_netns, "h2")
    assert target_specs(str(first_ctr))[0] == CaptureSpec(first_host, "port0", "client")
    assert target_specs(str(second_ctr))[0] == CaptureSpec(second_host, "port0", "client")


def test_uplink_is_the_way_to_the_dns_server(make_netns: Callable[..., Path]) -> None:
    _host, ctr = container_host(make_netns, "h1")
    hops = [(s.ifname, s.role) for s in target_specs(str(ctr), server="198.18.41.2")]
    assert hops == [("port0", "client"), ("br0", "bridge"), ("up0", "uplink")]
    # a server on the bridge itself (dnsmasq on the host): no uplink to capture
    hops = [(s.ifname, s.role) for s in target_specs(str(ctr), server="198.18.40.1")]
    assert hops == [("port0", "client"), ("br0", "bridge")]


def test_target_without_veth_is_a_clear_error(make_netns: Callable[..., Path]) -> None:
    lonely = make_netns("lonely")
    with pytest.raises(TargetNotFound, match=r"0 veth interfaces.*--iface"):
        target_specs(str(lonely), "netns:lonely")


def test_capture_target_through_the_cli(
    make_netns: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, ctr = container_host(make_netns, "h1")
    out = tmp_path / "t.pcapng"
    argv = ["capture", "--target", f"netns:{ctr.name}", "--duration", "0.5"]
    assert main([*argv, "-w", str(out), "--json"]) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert f"capturing on {host}:port0 (client), {host}:br0 (bridge)" in printed.err
    assert [(i["netns"], i["ifname"], i["role"]) for i in summary["interfaces"]] == [
        (host, "port0", "client"),
        (host, "br0", "bridge"),
        (host, "up0", "uplink"),
    ]
    assert out.exists()
    assert main(["capture", "--target", "netns:nslt-none", "--count", "1", "-w", str(out)]) == 1
    assert "nslt-none was not found" in capsys.readouterr().err
    assert main(["capture", "--target", "host", "--count", "1", "-w", str(out)]) == 2


def test_peer_in_our_own_namespace(make_netns: Callable[..., Path]) -> None:
    # the usual Docker host: the veth's peer lives where netsleuth runs; run the
    # finder from inside the test's host namespace so that it is "our own"
    host, ctr = container_host(make_netns, "h1")
    code = (
        "import sys; from netsleuth.packets.hops import target_specs; "
        "print([(s.netns, s.ifname, s.role) for s in target_specs(sys.argv[1])])"
    )
    proc = subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, "-c", code, str(ctr)],
        capture_output=True,
        text=True,
        check=True,
    )
    # our own namespace is named "" (and would be found under its name too)
    assert proc.stdout.strip() == str(
        [("", "port0", "client"), ("", "br0", "bridge"), ("", "up0", "uplink")]
    )
