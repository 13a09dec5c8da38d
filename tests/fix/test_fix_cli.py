"""`netsleuth fix arp-notify | ip-forward | mtu` on real namespaces, and the
CLI's own constants."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth import fix
from netsleuth.cli import EXIT_OK, main
from netsleuth.cli.fix_cmd import PERSIST_CHOICES
from netsleuth.netns import Namespace, run_in


def test_cli_persist_choices_match_the_library() -> None:
    assert PERSIST_CHOICES == fix.PERSIST_CHOICES


def test_fix_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fix", "bridge", "--help"])
    out = capsys.readouterr().out
    assert "--mac auto" in out and "backed up" in out and "netsleuth fix bridge br0 --apply" in out


def _bridge_with_port(path: Path, port_mtu: int = 1500) -> None:
    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="br-m", kind="bridge")
            ipr.link("add", ifname="vm0", kind="veth", peer="vm0-c")
            b = ipr.link_lookup(ifname="br-m")[0]
            p = ipr.link_lookup(ifname="vm0")[0]
            ipr.link("set", index=p, master=b, mtu=port_mtu)

    run_in(path, body)


def _mtus(path: Path) -> dict[str, int]:
    def body() -> dict[str, int]:
        with IPRoute() as ipr:
            return {m.get("ifname"): m.get("mtu") for m in ipr.get_links()}

    return run_in(path, body)


@pytest.mark.netns
def test_fix_sysctls_and_mtu(
    make_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_netns("fx")
    name = path.name
    _bridge_with_port(path)
    assert main(["fix", "ip-forward", "--netns", name]) == EXIT_OK
    assert "would set net.ipv4.ip_forward 0 -> 1" in capsys.readouterr().out
    assert Namespace.of(path).sysctl("net.ipv4.ip_forward") == "0"
    assert main(["fix", "ip-forward", "--netns", name, "--apply", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["after"] == "1"
    assert Namespace.of(path).sysctl("net.ipv4.ip_forward") == "1"

    assert main(["fix", "arp-notify", "br-m", "--netns", name, "--apply"]) == EXIT_OK
    assert Namespace.of(path).sysctl("net.ipv4.conf.br-m.arp_notify") == "1"
    capsys.readouterr()
    assert main(["fix", "arp-notify", "br-m", "--netns", name, "--apply"]) == EXIT_OK
    assert "already 1" in capsys.readouterr().out

    run_in(path, lambda: _set_mtu("vm0", 1400))
    assert _mtus(path)["br-m"] == 1400  # the bridge follows its smallest port
    run_in(path, lambda: _set_mtu("vm0", 9000))
    run_in(path, lambda: _set_mtu("br-m", 1500))  # now the port is bigger
    assert main(["fix", "mtu", "br-m", "--netns", name, "--mtu", "1450", "--apply"]) == EXIT_OK
    mtus = _mtus(path)
    assert (mtus["br-m"], mtus["vm0"]) == (1450, 1450)

    assert main(["fix", "arp-notify", "nosuch", "--netns", name]) == 2
    assert "is the interface name right" in capsys.readouterr().err


def _set_mtu(name: str, mtu: int) -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], mtu=mtu)
