"""Config writers: golden files per format; every written file read back by
the format's real tool where it runs here (ifquery, netplan generate,
systemd-networkd creating the bridge in a namespace), else by our parser."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netsleuth.audit import bridge_mac_state
from netsleuth.fix import WRITERS, Definition, EditRefused, find_definitions, plan_edit, write_edit
from netsleuth.fix.configs import NetworkdWriter, NetworkManagerWriter
from netsleuth.netns import exec_argv

GOLDEN = Path(__file__).parent / "golden"
MAC = "02:5a:1e:0c:33:01"
CASES = sorted(p for p in GOLDEN.glob("*/*.in") if p.with_suffix(".out").exists())


def _install(tmp: Path, manager: str, src: Path) -> Path:
    """Put a golden input where its manager keeps its files under ``tmp``."""
    where = {
        "ifupdown": tmp / "network" / "interfaces",
        "networkd": tmp / "systemd" / "network" / "20-br-ci.netdev",
        "networkmanager": tmp / "NetworkManager" / "system-connections" / "br-ci.nmconnection",
        "netplan": tmp / "netplan" / "50-ci.yaml",
    }[manager]
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(src.read_text())
    where.chmod(0o600)
    return where


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(case: Path, tmp_path: Path) -> None:
    manager = case.parent.name
    path = _install(tmp_path, manager, case)
    (definition,) = find_definitions(tmp_path, "br-ci")
    assert definition.manager == manager and definition.path == path
    edit = plan_edit(definition, MAC)
    assert edit.new == case.with_suffix(".out").read_text()
    assert WRITERS[manager].read_mac(edit.new, "br-ci", path) == MAC
    backup = write_edit(edit)
    assert backup is not None and backup.read_text() == case.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 == stat.S_IMODE(backup.stat().st_mode)
    # applying again: read back as already set, nothing written
    (again,) = find_definitions(tmp_path, "br-ci")
    assert again.mac == MAC
    assert not plan_edit(again, MAC).changed and write_edit(plan_edit(again, MAC)) is None


def test_flow_style_netplan_is_refused_with_the_line_to_add(tmp_path: Path) -> None:
    path = _install(tmp_path, "netplan", GOLDEN / "netplan" / "flow.in")
    (definition,) = find_definitions(tmp_path, "br-ci")
    with pytest.raises(EditRefused, match=r'add it by hand: .*macaddress: "02:5a'):
        plan_edit(definition, MAC)
    assert path.read_text() == (GOLDEN / "netplan" / "flow.in").read_text()


def test_write_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    path = _install(tmp_path, "networkd", GOLDEN / "networkd" / "insert.in")
    edit = plan_edit(find_definitions(tmp_path, "br-ci")[0], MAC)
    path.write_text(path.read_text() + "# edited meanwhile\n")
    with pytest.raises(EditRefused, match="changed since it was read"):
        write_edit(edit)
    assert not list(path.parent.glob("*.bak"))


def test_ifupdown_follows_source_and_source_directory(tmp_path: Path) -> None:
    net = tmp_path / "network"
    (net / "interfaces.d").mkdir(parents=True)
    (net / "bridges").mkdir()
    (net / "interfaces").write_text(
        "source-directory /etc/network/interfaces.d\nsource bridges/*.cfg\n"
    )
    (net / "interfaces.d" / "eth0").write_text("iface eth0 inet dhcp\n")
    (net / "interfaces.d" / "old.bak").write_text("iface br-ci inet manual\n bridge_ports x\n")
    (net / "bridges" / "ci.cfg").write_text("iface br-ci inet manual\n  bridge_ports none\n")
    (net / "bridges" / "other.cfg").write_text("iface br-x inet manual\n  bridge_ports none\n")
    defs = find_definitions(tmp_path, "br-ci")
    assert [(d.manager, d.path.name, d.mac) for d in defs] == [("ifupdown", "ci.cfg", "")]


def test_non_bridge_or_other_name_is_not_a_definition(tmp_path: Path) -> None:
    nd = tmp_path / "systemd" / "network"
    nd.mkdir(parents=True)
    (nd / "a.netdev").write_text("[NetDev]\nName=br-ci\nKind=vxlan\n")
    (nd / "b.netdev").write_text("[NetDev]\nName=br-cix\nKind=bridge\n")
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "interfaces").write_text("iface br-ci inet dhcp\n")  # no ports
    assert find_definitions(tmp_path, "br-ci") == []


@pytest.mark.skipif(shutil.which("ifquery") is None, reason="ifupdown not installed")
@pytest.mark.parametrize("case", sorted((GOLDEN / "ifupdown").glob("*.out")), ids=str)
def test_ifquery_reads_what_we_wrote(case: Path) -> None:
    out = subprocess.run(["ifquery", "-i", str(case), "br-ci"], capture_output=True, text=True,
                         check=True, timeout=20).stdout  # fmt: skip
    options = dict(line.split(": ", 1) for line in out.splitlines())
    assert options.get("hwaddress", options.get("bridge-hw")) == MAC


@pytest.mark.skipif(shutil.which("netplan") is None, reason="netplan.io not installed")
@pytest.mark.parametrize("case", sorted((GOLDEN / "netplan").glob("*.out")), ids=str)
def test_netplan_generate_reads_what_we_wrote(case: Path, tmp_path: Path) -> None:
    _install(tmp_path / "etc", "netplan", case)
    subprocess.run(["netplan", "generate", "--root-dir", str(tmp_path)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    netdev = tmp_path / "run" / "systemd" / "network" / "10-netplan-br-ci.netdev"
    text = netdev.read_text()
    assert NetworkdWriter().read_mac(text, "br-ci", netdev) == MAC


NETWORKD = Path("/usr/lib/systemd/systemd-networkd")


@pytest.mark.netns
@pytest.mark.skipif(not NETWORKD.exists(), reason="systemd-networkd not installed")
@pytest.mark.parametrize("case", sorted((GOLDEN / "networkd").glob("*.out")), ids=str)
def test_systemd_networkd_creates_the_pinned_bridge(
    case: Path, tmp_path: Path, make_netns: Callable[..., Path]
) -> None:
    """The real networkd, in a throwaway namespace with a private mount
    namespace (its config dir and /run/systemd replaced), builds the bridge
    from the file we wrote: the MAC is ours and addr_assign_type is 3."""
    path = make_netns("nd")
    conf = tmp_path / "network"
    conf.mkdir()
    shutil.copy(case, conf / "20-br-ci.netdev")
    script = (
        f'mount --bind "{conf}" /etc/systemd/network && mount -t tmpfs tmpfs /run/systemd '
        f"&& exec {NETWORKD}"
    )
    argv = exec_argv(
        path.name,
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        die_with_parent=True,  # never outlives a killed test run
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        state = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                state = bridge_mac_state(path.name, "br-ci")
                break
            except Exception:
                time.sleep(0.2)
        assert state is not None, proc.stdout.read() if proc.poll() is not None else "timeout"
        assert state.mac == MAC and state.pinned
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


# Our own parser, round trip: NetworkManager keyfiles (no nmcli here) and
# networkd files with arbitrary other content.
_key = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(lambda k: k != "mac-address")
_val = st.from_regex(r"[A-Za-z0-9./:_-]{0,16}", fullmatch=True)
_section = st.tuples(st.sampled_from(["ipv4", "ipv6", "bridge", "ethernet", "proxy", "x"]),
                     st.lists(st.tuples(_key, _val), max_size=4))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(_section, max_size=5), st.sampled_from(["", "02:00:00:00:00:09"]))
def test_networkmanager_round_trip(sections: list, old_mac: str) -> None:
    text = "[connection]\nid=x\ntype=bridge\ninterface-name=br-ci\n"
    for name, items in sections:
        text += f"\n[{name}]\n" + "".join(f"{k}={v}\n" for k, v in items)
    if old_mac and not any(name == "bridge" for name, _ in sections):
        text += f"\n[bridge]\nmac-address={old_mac}\n"
    w = NetworkManagerWriter()
    p = Path("x.nmconnection")
    try:
        new = w.render(text, "br-ci", MAC)
    except EditRefused:
        return  # a duplicate key: refused rather than guessed
    assert w.read_mac(new, "br-ci", p) == MAC
    assert w.canonical(new, "br-ci", p) == w.canonical(text, "br-ci", p)
    assert w.render(new, "br-ci", MAC) == new


def test_networkd_duplicate_key_is_refused() -> None:
    text = "[NetDev]\nName=br-ci\nKind=bridge\nMACAddress=a\nMACAddress=b\n"
    definition = Definition("networkd", Path("x.netdev"), "br-ci")
    with pytest.raises(EditRefused, match="twice"):
        NetworkdWriter().render(text, definition.bridge, MAC)
