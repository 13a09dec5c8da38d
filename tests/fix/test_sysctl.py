"""`fix arp-notify` / `fix ip-forward` without the kernel: what is asked, and
what the change reports; where the configuration lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.fix import IP_FORWARD, SysctlChange, arp_notify_fix, etc_root, read_sysctl
from netsleuth.fix.conntrack import read_leftovers
from netsleuth.fix.plan import ETC_ROOT_ENV


def test_arp_notify_names_the_bridge_and_points_to_the_lasting_fix() -> None:
    fix = arp_notify_fix("br-ci")
    assert (fix.key, fix.value) == ("net.ipv4.conf.br-ci.arp_notify", "1")
    assert "netsleuth fix bridge br-ci" in fix.persist_hint
    assert (IP_FORWARD.key, IP_FORWARD.value) == ("net.ipv4.ip_forward", "1")
    assert "/etc/sysctl.d/" in IP_FORWARD.persist_hint


def test_a_change_reports_before_after_and_its_json_keeps_its_keys() -> None:
    dry = SysctlChange(IP_FORWARD, "0", "0", applied=False)
    assert dry.needed
    assert dry.to_json() == {
        "key": "net.ipv4.ip_forward",
        "before": "0",
        "after": "0",
        "wanted": "1",
        "applied": False,
        "persist": IP_FORWARD.persist_hint,
    }
    assert list(dry.to_json()) == ["key", "before", "after", "wanted", "applied", "persist"]
    assert not SysctlChange(IP_FORWARD, "1", "1", applied=True).needed


def test_a_missing_key_asks_about_the_interface_name() -> None:
    # a read of this process's own /proc/sys; nothing is written
    with pytest.raises(InvalidArgument, match="is the interface name right"):
        read_sysctl(None, "net.ipv4.conf.nslt-no-such-if.arp_notify")


def test_etc_root_given_then_environment_then_etc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ETC_ROOT_ENV, raising=False)
    assert etc_root() == Path("/etc")
    monkeypatch.setenv(ETC_ROOT_ENV, "/srv/etc")
    assert etc_root() == Path("/srv/etc")
    assert etc_root(Path("/tmp/x")) == Path("/tmp/x")


def test_conntrack_leftovers_are_unknown_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 65534)
    assert read_leftovers(None, "br0") is None
