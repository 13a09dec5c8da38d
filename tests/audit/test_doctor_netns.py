"""The must-show scenario on real namespaces, bridges and veths: doctor finds
the unpinned bridge only, fix pins it (now and in an ifupdown file), doctor
is clean afterwards, and a second fix changes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.audit import bridge_mac_state, run_doctor
from netsleuth.cli import EXIT_FINDINGS, EXIT_OK, main
from netsleuth.netns import run_in

pytestmark = pytest.mark.netns

PINNED_MAC = "02:00:5e:10:00:01"


def build_two_bridges(path: Path) -> None:
    """br-pin (MAC set → pinned) and br-free (not), each with a veth port."""

    def body() -> None:
        with IPRoute() as ipr:
            for br, port in (("br-pin", "vp-pin"), ("br-free", "vp-free")):
                ipr.link("add", ifname=br, kind="bridge")
                ipr.link("add", ifname=port, kind="veth", peer=f"{port}-c")
                b = ipr.link_lookup(ifname=br)[0]
                p = ipr.link_lookup(ifname=port)[0]
                ipr.link("set", index=p, master=b)
                for idx in (b, p, ipr.link_lookup(ifname=f"{port}-c")[0]):
                    ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="br-pin")[0], address=PINNED_MAC)

    run_in(path, body)


def _subjects(findings: list, name: str, rule: str) -> set[str]:
    return {f.subject.removeprefix(f"{name}:") for f in findings if f.rule == rule}


def _fix_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["fix", "bridge", *args, "--json"]) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def test_doctor_fix_doctor_fix(
    make_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_netns("doc", {"resolv.conf": "nameserver 198.18.0.1\n"})
    name = path.name
    build_two_bridges(path)

    before = run_doctor(netns=name)
    assert _subjects(before, name, "bridge-mac-unpinned") == {"br-free"}
    unpinned = next(f for f in before if f.rule == "bridge-mac-unpinned")
    assert unpinned.severity.label == "critical"  # veth ports come and go
    assert unpinned.evidence["ports"] == ["vp-free"]
    assert main(["doctor", "--netns", name, "--fail-on", "warning", "--json"]) == EXIT_FINDINGS

    doc = _fix_json(["br-free", "--netns", name, "--persist", "none", "--apply"], capsys)
    assert doc["applied"] and doc["changed"]
    state = bridge_mac_state(name, "br-free")
    assert state.pinned and state.mac == doc["mac"]
    assert bridge_mac_state(name, "br-pin").mac == PINNED_MAC

    after = run_doctor(netns=name)
    assert not [f for f in after if "br-free" in f.subject], after
    capsys.readouterr()
    assert main(["doctor", "--netns", name, "--fail-on", "info", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == []

    again = _fix_json(["br-free", "--netns", name, "--persist", "none", "--apply"], capsys)
    assert again["changed"] == [] and again["mac"] == doc["mac"]
    assert bridge_mac_state(name, "br-free") == state


def test_fix_persists_to_ifupdown_and_ifquery_reads_it(
    make_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = make_netns("ifu")
    name = path.name
    build_two_bridges(path)
    etc = tmp_path / "etc"
    (etc / "network" / "interfaces.d").mkdir(parents=True)
    (etc / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (etc / "network" / "interfaces").write_text(
        "auto lo\niface lo inet loopback\n\nsource-directory /etc/network/interfaces.d\n"
    )
    stanza = etc / "network" / "interfaces.d" / "br-free"
    stanza.write_text("auto br-free\niface br-free inet manual\n    bridge_ports vp-free\n")
    common = ["br-free", "--netns", name, "--etc-root", str(etc)]

    plan = _fix_json(common, capsys)  # dry run: nothing changes
    assert not plan["applied"] and plan["edits"][0]["changed"]
    assert "+    hwaddress ether " in plan["edits"][0]["diff"]
    assert not bridge_mac_state(name, "br-free").pinned

    doc = _fix_json([*common, "--apply"], capsys)
    assert bridge_mac_state(name, "br-free").mac == doc["mac"]
    assert len(doc["backups"]) == 1
    assert Path(doc["backups"][0]).read_text() == stanza.read_text().replace(
        f"    hwaddress ether {doc['mac']}\n", ""
    )
    if shutil.which("ifquery"):
        out = subprocess.run(
            ["ifquery", "-i", str(stanza), "br-free"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
        assert f"hwaddress: {doc['mac']}" in out.splitlines()

    text = stanza.read_text()
    again = _fix_json([*common, "--apply"], capsys)
    assert again["changed"] == [] and again["backups"] == []
    assert stanza.read_text() == text
    assert len(list(stanza.parent.glob("*.bak"))) == 1


def test_fix_refuses_when_no_config_defines_the_bridge(
    make_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = make_netns("ref")
    build_two_bridges(path)
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "interfaces").write_text("auto lo\niface lo inet loopback\n")
    (tmp_path / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    rc = main(["fix", "bridge", "br-free", "--netns", path.name, "--etc-root", str(tmp_path)])
    rc_apply = main(
        ["fix", "bridge", "br-free", "--netns", path.name, "--etc-root", str(tmp_path), "--apply"]
    )
    err = capsys.readouterr().err
    assert rc == rc_apply == 1
    assert "hwaddress ether" in err and "--persist none" in err
    assert len(err.strip().splitlines()) == 2  # one line per refusal
    assert not bridge_mac_state(path.name, "br-free").pinned


def test_bridge_mac_state_of_missing_bridge(make_netns: Callable[..., Path]) -> None:
    from netsleuth.errors import TargetNotFound

    path = make_netns("miss")
    with pytest.raises(TargetNotFound):
        bridge_mac_state(path.name, "nosuchbr")


def test_all_netns_reads_every_named_namespace(make_netns: Callable[..., Path]) -> None:
    first, second = make_netns("all1"), make_netns("all2")
    build_two_bridges(first)
    build_two_bridges(second)
    findings = run_doctor(all_netns=True)
    unpinned = {f.subject for f in findings if f.rule == "bridge-mac-unpinned"}
    assert {f"{first.name}:br-free", f"{second.name}:br-free"} <= unpinned
    assert not {f"{first.name}:br-pin", f"{second.name}:br-pin"} & unpinned


def test_library_pin_by_namespace_path(make_netns: Callable[..., Path]) -> None:
    from netsleuth.errors import InvalidArgument
    from netsleuth.fix import pin_bridge_mac

    path = make_netns("lib")
    build_two_bridges(path)
    assert pin_bridge_mac(path, "br-free", "02:00:5E:10:00:02") == "02:00:5e:10:00:02"
    state = bridge_mac_state(path, "br-free")
    assert state.pinned and state.mac == "02:00:5e:10:00:02"
    assert pin_bridge_mac(str(path), "br-free", "02:00:5e:10:00:02") == "02:00:5e:10:00:02"
    with pytest.raises(InvalidArgument, match="not a bridge"):
        pin_bridge_mac(path, "vp-free", "02:00:5e:10:00:03")


def test_unpinned_bridge_names_the_namespaces_it_reaches(make_netns: Callable[..., Path]) -> None:
    host, guest = make_netns("reach-h"), make_netns("reach-g")

    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="br-r", kind="bridge")
            ipr.link(
                "add", ifname="vr0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(guest)}
            )
            br = ipr.link_lookup(ifname="br-r")[0]
            ipr.link("set", index=ipr.link_lookup(ifname="vr0")[0], master=br, state="up")

    run_in(host, body)
    (finding,) = [f for f in run_doctor(netns=host.name) if f.rule == "bridge-mac-unpinned"]
    assert finding.evidence["attached"] == [f"vr0 -> netns {guest.name}"]
