"""bridge-forward-blocked on a real namespace: a NATed bridge behind an
nftables forward chain with policy drop is found; the accept commands the
finding prints are valid and make doctor clean."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.audit import run_doctor
from netsleuth.netns import Namespace, exec_argv, run_in

pytestmark = pytest.mark.netns

RULESET = """
table ip nat {
  chain postrouting { type nat hook postrouting priority 100; policy accept;
    ip saddr 198.18.1.0/24 oifname != "br-fb" masquerade
  }
}
table inet filter {
  chain forward { type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "br-other" accept
  }
}
"""


def build(path: Path) -> None:
    """br-fb 198.18.1.1/24 with a veth port; uplink up0 with the default route."""

    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="br-fb", kind="bridge")
            ipr.link("add", ifname="vfb0", kind="veth", peer="vfb0-c")
            ipr.link("add", ifname="up0", kind="veth", peer="up0-p")
            br, port, up, peer = (
                ipr.link_lookup(ifname=n)[0] for n in ("br-fb", "vfb0", "up0", "up0-p")
            )
            ipr.link("set", index=port, master=br)
            for idx in (br, port, up, peer):
                ipr.link("set", index=idx, state="up")
            ipr.addr("add", index=br, address="198.18.1.1", prefixlen=24)
            ipr.addr("add", index=up, address="198.18.255.1", prefixlen=30)
            ipr.route("add", dst="0.0.0.0/0", gateway="198.18.255.2", oif=up)

    run_in(path, body)
    Namespace.at(path).set_sysctl("net.ipv4.ip_forward", 1)
    subprocess.run(exec_argv(path.name, ["nft", "-f", "-"]), input=RULESET, text=True,
                   check=True, timeout=20)  # fmt: skip


def test_forward_drop_found_and_the_printed_commands_clear_it(
    make_netns: Callable[..., Path],
) -> None:
    path = make_netns("fb")
    name = path.name
    build(path)

    [finding] = [f for f in run_doctor(netns=name) if f.rule == "bridge-forward-blocked"]
    assert finding.subject == f"{name}:br-fb" and finding.cause == "forward-blocked"
    assert finding.evidence["blocking_chains"] == [
        "nft inet filter forward: policy drop; accepts only br-other"
    ]
    assert not [f for f in run_doctor(netns=name) if f.rule == "bridge-nat-missing"]

    commands = finding.evidence["accept_commands"]
    assert isinstance(commands, list) and len(commands) == 2
    for cmd in commands:
        assert cmd.startswith(f"ip netns exec {name} nft insert rule inet filter forward")
        subprocess.run(shlex.split(cmd), check=True, timeout=20)
    assert not [f for f in run_doctor(netns=name) if f.rule == "bridge-forward-blocked"]
