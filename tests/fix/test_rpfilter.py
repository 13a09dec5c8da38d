"""`netsleuth fix rp-filter`: the decision (pure), the host's sysctl.d file
(under a temporary /etc, the kernel untouched), and the command on a real
namespace, where rp_filter is per namespace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.cli import EXIT_OK, main
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.fix.rpfilter import plan_rp_filter, rp_filter_values
from netsleuth.fix.sysctld import apply_sysctl_plan, parse_sysctl_conf
from netsleuth.netns import Namespace, run_in

KEY = "net.ipv4.conf.{}.rp_filter"


def test_loose_for_an_interface_whose_effective_mode_is_strict() -> None:
    # effective = max(all, iface): all=1 makes eth1 strict although its own value is 0
    values = {"all": "1", "default": "1", "lo": "0", "eth0": "2", "eth1": "0", "eth2": "0"}
    wanted, notes = rp_filter_values("eth1", values)
    assert wanted == {KEY.format("eth1"): "2"}
    assert "max(all 1, eth1 0)" in notes[0]
    assert "strict (eth2)" in notes[1] and "`netsleuth fix rp-filter all`" in notes[1]
    assert rp_filter_values("eth0", values)[0] == {}  # loose already
    assert rp_filter_values("all", values)[0] == {KEY.format("all"): "2"}
    off = {"all": "0", "default": "0", "lo": "0", "eth0": "0"}
    assert rp_filter_values("eth0", off)[0] == {}  # no filtering: nothing to loosen
    assert rp_filter_values("all", off)[0] == {}
    assert rp_filter_values("all", off | {"eth0": "1"})[0] == {KEY.format("all"): "2"}
    with pytest.raises(TargetNotFound, match="check the name with `ip link`"):
        rp_filter_values("nosuch0", values)


def test_the_host_plan_writes_a_sysctl_d_file_once(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    values = {"all": "0", "default": "0", "lo": "0", "br0": "1"}
    plan = plan_rp_filter("br0", values, None, etc_root=etc, runtime=False)
    assert plan.edit is not None and plan.edit.changed
    assert (
        plan.steps()[0]
        == f"leave {KEY.format('br0')} at 1 until the file is applied (persist only)"
    )
    result = apply_sysctl_plan(plan, None)  # persist only: no kernel write
    path = etc / "sysctl.d" / "90-netsleuth-rp-filter.conf"
    assert result.changed == (f"{path} written",)
    assert parse_sysctl_conf(path.read_text()) == {KEY.format("br0"): "2"}
    again = plan_rp_filter("br0", values, None, etc_root=etc, runtime=False)
    assert again.edit is not None and not again.edit.changed
    assert apply_sysctl_plan(again, None).changed == ()
    # a file read later at boot that sets it strict again is named
    (etc / "sysctl.d" / "99-local.conf").write_text(f"{KEY.format('br0')} = 1\n")
    noted = plan_rp_filter("br0", values, None, etc_root=etc)
    assert any("99-local.conf" in n and "overridden at boot" in n for n in noted.notes)
    no_file = plan_rp_filter("br0", values, None, etc_root=etc, persist=False)
    assert no_file.edit is None and "lost at reboot" in no_file.notes[-1]


def test_a_namespace_plan_has_no_file() -> None:
    values = {"all": "1", "lo": "0", "veth0": "0"}
    plan = plan_rp_filter("veth0", values, "lab", etc_root=Path("/nonexistent"))
    assert plan.edit is None and "not persisted" in plan.notes[-1]
    with pytest.raises(InvalidArgument, match="--persist-only"):
        plan_rp_filter("veth0", values, "lab", etc_root=Path("/x"), runtime=False)


def _veth(path: Path) -> None:
    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="vrp0", kind="veth", peer="vrp0-p")

    run_in(path, body)


@pytest.mark.netns
def test_fix_rp_filter_in_a_namespace(
    nsl_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = nsl_netns("rp")
    name = path.name
    _veth(path)
    ns = Namespace.of(path)
    ns.set_sysctl(KEY.format("all"), 1)
    ns.set_sysctl(KEY.format("vrp0"), 0)

    assert main(["fix", "rp-filter", "vrp0", "--netns", name]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"set {KEY.format('vrp0')} 0 -> 2 (netns {name})" in out and "not persisted" in out
    assert ns.sysctl(KEY.format("vrp0")) == "0"  # dry run

    assert main(["fix", "rp-filter", "vrp0", "--netns", name, "--apply", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["applied"] and doc["changed"] == [f"{KEY.format('vrp0')} 0 -> 2"]
    assert doc["file"] is None
    assert ns.sysctl(KEY.format("vrp0")) == "2" and ns.sysctl(KEY.format("all")) == "1"

    assert main(["fix", "rp-filter", "vrp0", "--netns", name, "--apply", "--json"]) == EXIT_OK
    again = json.loads(capsys.readouterr().out)
    assert again["settings"] == [] and again["changed"] == []  # idempotent

    assert main(["fix", "rp-filter", "all", "--netns", name, "--apply"]) == EXIT_OK
    assert "vrp0-p" in capsys.readouterr().out  # strict through all=1
    assert ns.sysctl(KEY.format("all")) == "2"

    assert main(["fix", "rp-filter", "nosuch0", "--netns", name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no interface nosuch0" in err
    assert main(["fix", "rp-filter", "vrp0", "--netns", f"{name}-gone"]) == 1
    assert "ip netns list" in capsys.readouterr().err
    assert main(["fix", "rp-filter", "vrp0", "--netns", name, "--persist-only"]) == 2
    assert "--persist-only" in capsys.readouterr().err


@pytest.mark.netns
def test_doctor_fix_doctor_for_strict_rp_filter(
    nsl_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bridge with a network routed behind it and strict rp_filter: doctor
    names it, the command in its fix makes it loose, doctor is clean."""
    from netsleuth.audit import run_doctor

    path = nsl_netns("rpd")
    name = path.name

    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="br-rp", kind="bridge")
            ipr.link("add", ifname="vrd0", kind="veth", peer="vrd0-p")
            br, port = ipr.link_lookup(ifname="br-rp")[0], ipr.link_lookup(ifname="vrd0")[0]
            ipr.link("set", index=port, master=br)
            for idx in (br, port, ipr.link_lookup(ifname="vrd0-p")[0]):
                ipr.link("set", index=idx, state="up")
            ipr.addr("add", index=br, address="198.18.8.1", prefixlen=24)
            ipr.route("add", dst="10.9.0.0/16", gateway="198.18.8.7", oif=br)

    run_in(path, body)
    Namespace.of(path).set_sysctl(KEY.format("all"), 1)
    [found] = [f for f in run_doctor(netns=name) if f.rule == "rp-filter-strict-asymmetric"]
    command = found.fix.split(" (", 1)[0]
    assert command == f"netsleuth fix rp-filter br-rp --netns {name} --apply"
    assert main(command.split()[1:]) == EXIT_OK
    capsys.readouterr()
    assert Namespace.of(path).sysctl(KEY.format("br-rp")) == "2"
    assert not [f for f in run_doctor(netns=name) if f.rule == "rp-filter-strict-asymmetric"]
