"""The raw rtnetlink link dump agrees with pyroute2's full decode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.netns import Namespace, count_neighbours, dump_links


@pytest.mark.netns
def test_dump_links_matches_pyroute2(make_netns: Callable[..., Path]) -> None:
    path = make_netns("rtnl")

    def body() -> tuple[list, list, int, int]:
        with IPRoute() as ipr:
            ipr.link("add", ifname="br-r", kind="bridge")
            br = ipr.link_lookup(ifname="br-r")[0]
            for i in range(3):
                ipr.link("add", ifname=f"vr{i}", kind="veth", peer=f"vr{i}p")
                port = ipr.link_lookup(ifname=f"vr{i}")[0]
                ipr.link("set", index=port, master=br, mtu=1400 + i, state="up")
            ipr.link("set", index=br, state="up")
            before = count_neighbours()
            ipr.neigh("add", dst="198.18.0.9", lladdr="02:00:00:00:00:09",
                      ifindex=br, state=0x80)  # fmt: skip
            full = [
                (m["index"], m.get("ifname"), m.get("address"), m.get("mtu"),
                 m.get(("linkinfo", "kind")) or "", m.get("master") or 0, m.get("operstate"))
                for m in ipr.get_links()
            ]  # fmt: skip
        raw = [(r.index, r.name, r.mac, r.mtu, r.kind, r.master, r.operstate) for r in dump_links()]
        return full, raw, before, count_neighbours()

    full, raw, before, after = Namespace.at(path).run(body)
    assert sorted(raw) == sorted(full)
    assert {r[4] for r in raw} == {"", "bridge", "veth"}
    # The kernel may hold entries of its own (seen once on a CI host); the
    # one added here must be counted, and only once.
    assert after - before == 1
