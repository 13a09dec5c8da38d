"""A real throwaway dockerd inside a namespace, on a bridge created by hand —
the reference's CI setup. Needs root and docker.io (marker ``docker``)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.docker import (
    BUSYBOX_IMAGE,
    DockerDaemon,
    DockerEventSource,
    clean_stale_daemons,
    ensure_image,
    list_daemons,
    resolve_container,
)
from netsleuth.docker.daemon import CGROUP_ROOT
from netsleuth.errors import NetsleuthError, TargetNotFound
from netsleuth.model import DockerDetail, EventKind, NetEvent

BRIDGE = "br0"  # made by the bridge_ns fixture (conftest.py)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

HIGH_MAC = "fe:ff:ff:ff:ff:f0"


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20).stdout


def root_snapshot() -> dict[str, Any]:
    """What the machine's own namespace has: links, firewall, sysctls, mounts."""
    links = {
        (link["ifname"], link.get("address", "")) for link in json.loads(_run(["ip", "-j", "link"]))
    }
    iptables = [line for line in _run(["iptables-save"]).splitlines() if not line.startswith("#")]
    sysctls = {
        key: Path("/proc/sys", key).read_text()
        for key in ("net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding")
    }
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "/netsleuth/docker" in line.split()[4] or " overlay " in line
    ]
    return {
        "links": links,
        "nft": _run(["nft", "list", "ruleset"]),
        "iptables": iptables,
        "sysctls": sysctls,
        "mounts": mounts,
    }


def bridge_mac(ns: str) -> str:
    with IPRoute(netns=ns) as ipr:
        return str(ipr.get_links(ifname=BRIDGE)[0].get("address"))


def add_port(ns: str, name: str, mac: str) -> None:
    with IPRoute(netns=ns) as ipr:
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": f"{name}p"}, address=mac)
        ipr.link("set", index=ipr.link_lookup(ifname=f"{name}p")[0], state="up")
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], master=br, state="up")


def wait_for(pred: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_daemon_runs_containers_and_leaves_the_machine_untouched(bridge_ns: str) -> None:
    before = root_snapshot()
    with DockerDaemon(bridge_ns, BRIDGE, fixed_cidr="198.18.44.128/25", dns=["198.18.44.1"]) as d:
        assert d.storage_driver in ("overlay2", "vfs")
        client = d.client()
        ensure_image(client)
        image_id = ensure_image(client)  # second call reuses the image
        assert len(client.images.list(name="netsleuth/busybox")) == 1
        assert client.images.get(BUSYBOX_IMAGE).id == image_id
        out = client.containers.run(
            BUSYBOX_IMAGE, ["sh", "-c", "cat /etc/resolv.conf; ip -4 -o addr show eth0"],
            remove=True,
        ).decode()  # fmt: skip
        assert "nameserver 198.18.44.1" in out
        inet = out.split(" inet ", 1)[1].split()[0]  # e.g. 198.18.44.130/24
        address, prefix = inet.split("/")
        assert prefix == "24"  # the bridge's subnet ...
        assert ipaddress.ip_address(address) in ipaddress.ip_network("198.18.44.128/25")
        sleeper = client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True)
        during = root_snapshot()
        with IPRoute(netns=bridge_ns) as ipr:
            names = {link.get("ifname") for link in ipr.get_links()}
        assert "docker0" not in names  # --bridge: docker made no bridge of its own
        (listed,) = [info for info in list_daemons() if info.pid == d.pid]
        assert listed.hosts == (d.host,)
        assert (listed.bridge, listed.bridge_precreated) == (BRIDGE, True)
        assert not (listed.iptables or listed.ip_forward or listed.ip_masq)
        assert listed.data_root == str(d.paths.data_root)
        assert listed.netns_inode == os.stat(f"/run/netns/{bridge_ns}").st_ino
        sleeper.remove(force=True)
        client.close()
        assert d.paths.socket.exists()
    after = root_snapshot()
    for snap in (during, after):
        assert not {
            n for n, _ in snap["links"] - before["links"] if n.startswith(("docker", "veth", "br-"))
        }
        assert snap["nft"] == before["nft"]
        assert snap["iptables"] == before["iptables"]
        assert snap["sysctls"] == before["sysctls"]
        assert snap["mounts"] == before["mounts"]
    assert "docker0" not in {n for n, _ in after["links"]}
    assert not d.paths.state_dir.exists() and not d.paths.data_root.exists()
    assert not list(CGROUP_ROOT.glob(f"*/{d.paths.cgroup_parent}"))


def test_container_veth_moves_the_unpinned_bridge_mac(bridge_ns: str) -> None:
    """The reference's mechanism with a real dockerd: a container's veth with a
    lower MAC joins → the bridge takes it; it leaves → the MAC goes back."""
    add_port(bridge_ns, "keep0", HIGH_MAC)
    assert bridge_mac(bridge_ns) == HIGH_MAC
    with DockerDaemon(bridge_ns, BRIDGE, fixed_cidr="198.18.44.128/25") as d:
        client = d.client()
        ensure_image(client)
        container = client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True)
        assert wait_for(lambda: bridge_mac(bridge_ns) != HIGH_MAC)
        with IPRoute(netns=bridge_ns) as ipr:
            br = ipr.link_lookup(ifname=BRIDGE)[0]
            ports = [
                link for link in ipr.get_links()
                if link.get("master") == br and link.get("ifname") != "keep0"
            ]  # fmt: skip
        assert len(ports) == 1 and ports[0].get("ifname").startswith("veth")
        assert bridge_mac(bridge_ns) == ports[0].get("address")
        container.remove(force=True)
        assert wait_for(lambda: bridge_mac(bridge_ns) == HIGH_MAC)
        # Pinned (addr_assign_type 3): the same container no longer moves it.
        with IPRoute(netns=bridge_ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=BRIDGE)[0], address=HIGH_MAC)
        client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True)
        time.sleep(0.3)
        assert bridge_mac(bridge_ns) == HIGH_MAC
        client.close()


def test_resolve_container_by_name_and_id(bridge_ns: str) -> None:
    with DockerDaemon(bridge_ns, BRIDGE, fixed_cidr="198.18.44.128/25") as d:
        client = d.client()
        ensure_image(client)
        container = client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name="probe")
        pid, cid, name = resolve_container(d.host, "probe")
        assert (cid, name) == (container.id, "probe")
        assert resolve_container(d.host, container.id[:10]).pid == pid
        # the PID's namespace is the container's: eth0 holds its address
        container.reload()
        addr = container.attrs["NetworkSettings"]["IPAddress"]

        def eth0_addrs() -> list[str]:
            with IPRoute() as ipr:
                return [a.get("address") for a in ipr.get_addr(label="eth0")]

        assert netns.run_in(f"/proc/{pid}/ns/net", eth0_addrs) == [addr]
        with pytest.raises(TargetNotFound, match="no container nosuch"):
            resolve_container(d.host, "nosuch")
        container.kill()
        with pytest.raises(TargetNotFound, match="exited"):
            resolve_container(d.host, "probe")
        client.close()
    with pytest.raises(NetsleuthError, match="cannot reach the Docker daemon"):
        resolve_container(d.host, "probe")


def test_events_of_a_run_rm_and_of_a_stopping_daemon(bridge_ns: str) -> None:
    got: list[NetEvent] = []
    lock = threading.Lock()

    def sink(event: NetEvent) -> None:
        with lock:
            got.append(event)

    d = DockerDaemon(bridge_ns, BRIDGE, fixed_cidr="198.18.44.128/25")
    with d:
        client = d.client()
        ensure_image(client)
        source = DockerEventSource([d.host], sink)
        source.start()
        t0 = time.monotonic_ns()
        client.containers.run(BUSYBOX_IMAGE, ["true"], remove=True, name="churn-1")
        client.close()
        assert wait_for(
            lambda: any(
                isinstance(e.detail, DockerDetail) and e.detail.action == "destroy" for e in got
            )
        )
        t1 = time.monotonic_ns()
        with lock:
            mine = [
                (e.subject, e.detail.action)
                for e in got
                if e.kind is EventKind.DOCKER and isinstance(e.detail, DockerDetail)
            ]
        assert mine == [
            ("churn-1", "create"),
            ("churn-1", "connect"),
            ("churn-1", "start"),
            ("churn-1", "die"),
            ("churn-1", "disconnect"),
            ("churn-1", "destroy"),
        ]
        assert all(t0 - 50_000_000 <= e.mono_ns <= t1 + 50_000_000 for e in got)
        assert {e.detail.daemon for e in got} == {d.host}
    # the daemon went away under the reader: one NOTE, thread still joinable
    assert wait_for(lambda: any(e.kind is EventKind.NOTE for e in got))
    source.stop()
    assert not any(t.is_alive() for t in source._threads)


def _start_owner(bridge_ns: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    owner = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "_owner.py"), bridge_ns, BRIDGE],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "the owner process died before reporting"
    return owner, json.loads(line)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_all_gone(info: dict[str, Any]) -> None:
    assert wait_for(lambda: not _pid_alive(info["dockerd_pid"]), 10)
    assert wait_for(lambda: not _pid_alive(info["container_pid"]), 10)
    assert not Path(info["state_dir"]).exists()
    assert not Path(info["data_root"]).exists()
    assert not Path(info["shim_socket"]).exists()
    assert not list(CGROUP_ROOT.glob(f"*/{info['cgroup_parent']}"))
    exec_root = info["state_dir"] + "/exec"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert exec_root.encode() not in (entry / "cmdline").read_bytes()
            except OSError:
                continue


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_owner_cleans_up(bridge_ns: str, sig: signal.Signals) -> None:
    owner, info = _start_owner(bridge_ns)
    try:
        assert _pid_alive(info["dockerd_pid"]) and _pid_alive(info["container_pid"])
        owner.send_signal(sig)
        owner.wait(30)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
    _assert_all_gone(info)


def test_killed_owner_is_cleaned_by_the_next_run(bridge_ns: str) -> None:
    owner, info = _start_owner(bridge_ns)
    owner.kill()  # SIGKILL: nothing of the owner's own cleanup runs
    owner.wait(5)
    try:
        assert _pid_alive(info["dockerd_pid"])  # left behind, as after a crash
        assert _pid_alive(info["container_pid"])
        assert Path(info["shim_socket"]).exists()
    finally:
        cleaned = clean_stale_daemons()
    assert info["daemon_id"] in cleaned
    _assert_all_gone(info)


def test_a_live_owners_daemon_is_not_cleaned(bridge_ns: str) -> None:
    with DockerDaemon(bridge_ns, BRIDGE) as d:
        assert d.daemon_id not in clean_stale_daemons()
        assert d.pid is not None and _pid_alive(d.pid)
        assert d.client().ping()


def test_missing_namespace_is_a_user_error() -> None:
    with pytest.raises(TargetNotFound, match="does not exist"):
        DockerDaemon("nslt-no-such-ns", BRIDGE).start()


def test_missing_bridge_is_a_user_error_and_leaves_nothing(bridge_ns: str) -> None:
    d = DockerDaemon(bridge_ns, "nosuchbr", storage_driver="vfs", start_timeout=20)
    with pytest.raises(NetsleuthError, match="did not start"):
        d.start()
    assert not d.paths.state_dir.exists() and not d.paths.data_root.exists()
    assert os.path.exists(f"/run/netns/{bridge_ns}")
