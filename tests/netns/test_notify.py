"""Netlink notifications and dumps of one namespace (real namespaces)."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth.errors import TargetNotFound
from netsleuth.netns import Namespace, notify
from netsleuth.netns.conntrack import Conntrack

pytestmark = pytest.mark.netns

RTM_NEWLINK = 16


def test_a_subscription_sees_a_link_born_in_its_namespace_only(
    make_netns: Callable[..., Path],
) -> None:
    path = make_netns("notify")
    sock = notify.subscribe(path)
    try:
        subprocess.run(
            ["ip", "-n", path.name, "link", "add", "dum7", "type", "veth", "peer", "name", "dum7p"],
            check=True,
        )
        decoder = notify.Decoder()
        names = []
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        for _ in range(20):  # bounded: a few notifications at most
            if not poller.poll(1000):
                break
            for msg in decoder.parse(sock.recv(1 << 16)):
                if msg["header"]["type"] == RTM_NEWLINK:
                    names.append(msg.get_attr("IFLA_IFNAME"))
            if "dum7" in names:
                break
        assert "dum7" in names
    finally:
        sock.close()
    dumped = {
        m.get_attr("IFLA_IFNAME") for m in notify.dump(path) if m["header"]["type"] == RTM_NEWLINK
    }
    assert {"lo", "dum7"} <= dumped
    assert "dum7" not in {
        m.get_attr("IFLA_IFNAME") for m in notify.dump(None) if m["header"]["type"] == RTM_NEWLINK
    }


def test_a_deleted_namespace_is_not_created_again_by_a_dump(
    make_netns: Callable[..., Path],
) -> None:
    path = make_netns("gone")
    subprocess.run(["ip", "netns", "del", path.name], check=True)
    with pytest.raises(TargetNotFound):
        notify.dump(path)
    assert not path.exists()


def test_the_conntrack_table_of_a_namespace_is_read_there(
    make_netns: Callable[..., Path],
) -> None:
    path = make_netns("ct")

    def read() -> int:
        with Conntrack() as ct:
            return len(ct.entries())

    assert Namespace.of(path).run(read) == 0  # a new namespace tracks nothing yet
