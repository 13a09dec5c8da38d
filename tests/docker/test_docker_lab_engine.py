"""The lab's Docker engine: a real dockerd in the lab's host namespace on the
lab bridge, a probing container whose DNS goes through the lab's NAT to the
upstream dnsmasq, and the `docker run --rm` churn moving the bridge MAC."""

from __future__ import annotations

import threading
import time

import dns.message
import dns.query
import dns.rdatatype
import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.docker import resolve_container
from netsleuth.errors import InvalidArgument
from netsleuth.lab import LabConfig, build_lab
from netsleuth.lab.docker_engine import (
    HIGH_PORT_MAC,
    DockerChurn,
    DockerEngine,
    docker_host_of,
)
from netsleuth.packets.capture import CaptureSpec
from netsleuth.packets.hops import target_specs
from netsleuth.probes.spec import parse_resolv_conf
from netsleuth.watch.targets import parse_target

pytestmark = [pytest.mark.docker, pytest.mark.lab, pytest.mark.timeout(180)]


def test_probe_container_resolves_through_the_lab_and_churn_moves_the_mac() -> None:
    with build_lab(LabConfig(containers=0)) as topo, DockerEngine(topo) as engine:
        assert engine.host == docker_host_of(topo)
        assert engine.storage_driver in ("overlay2", "vfs")
        probe = engine.start_probe_container()
        assert resolve_container(engine.host, probe.target.split(":", 1)[1]).pid == probe.pid

        # The probe's resolver goes to the lab's upstream DNS, through the NAT.
        client = engine.daemon.client()
        container = client.containers.get(probe.id)
        code, resolv = container.exec_run(["cat", "/etc/resolv.conf"])
        assert code == 0 and f"nameserver {topo.dns_server}" in resolv.decode()
        code, out = container.exec_run(["nslookup", "-type=a", topo.dns_name])
        assert code == 0, out
        assert topo.dns_answer in out.decode()
        query = dns.message.make_query(topo.dns_name, dns.rdatatype.A)
        answer = netns.run_in(
            probe.netns_path, lambda: dns.query.udp(query, topo.dns_server, timeout=1.0)
        )
        assert topo.dns_answer in answer.to_text()

        # The probe's bridge port got a MAC above anything random, so every
        # churn container's port is the lowest while it is attached.
        with IPRoute(netns=topo.host_ns) as ipr:
            br = ipr.link_lookup(ifname=topo.bridge)[0]
            (port,) = [link for link in ipr.get_links() if link.get("master") == br]
            assert port.get("address") == HIGH_PORT_MAC
            assert ipr.get_links(br)[0].get("address") == HIGH_PORT_MAC

        # `capture --target container:NAME` finds the same hops from the kernel's
        # topology: the probe's port, the bridge, the uplink toward its DNS server
        location = parse_target(probe.target, docker_host=engine.host).locate()
        assert location is not None and location.path is not None
        server = parse_resolv_conf(location.resolv_conf().read_text())[0]
        assert server == topo.dns_server
        assert target_specs(location.path, probe.target, server) == [
            CaptureSpec(topo.host_ns, port.get("ifname"), "client"),
            CaptureSpec(topo.host_ns, topo.bridge, "bridge"),
            CaptureSpec(topo.host_ns, topo.uplink, "uplink"),
        ]

        seen: list[str] = []
        stop = threading.Event()

        def watch_mac() -> None:
            with IPRoute(netns=topo.host_ns) as ipr:
                for _ in range(2000):  # bounded: 2000 × 10 ms
                    if stop.is_set():
                        return
                    mac = ipr.get_links(ifname=topo.bridge)[0].get("address")
                    if not seen or seen[-1] != mac:
                        seen.append(mac)
                    time.sleep(0.01)

        watcher = threading.Thread(target=watch_mac)
        watcher.start()
        try:
            with DockerChurn(topo, t_in=0.5, t_out=0.3, duration=3.0) as churn:
                time.sleep(3.5)  # the churn ends by itself after its duration
            time.sleep(0.2)
        finally:
            stop.set()
            watcher.join()
        assert churn.error is None
        assert churn.runs >= 2
        actions = [s.action for s in churn.steps]
        assert actions == ["join", "leave"] * churn.runs
        assert all(s.port.startswith("veth") for s in churn.steps)
        joined = [s.mac for s in churn.steps if s.action == "join"]
        # the bridge took each churn port's MAC and gave it back on leaving
        assert seen[0] == HIGH_PORT_MAC and seen[-1] == HIGH_PORT_MAC
        assert [m for m in seen if m != HIGH_PORT_MAC] == joined
        # stopping mid-run kills the running container: its port leaves at once
        began = time.monotonic()
        with DockerChurn(topo, t_in=60, t_out=0.1, duration=120) as long_churn:
            for _ in range(500):  # bounded: up to 10 s for the first run to start
                if long_churn.runs:
                    break
                time.sleep(0.02)
        assert time.monotonic() - began < 30  # not the 60 s its container sleeps
        assert [s.action for s in long_churn.steps] == ["join", "leave"]
        # only the probe is left
        assert [c.name for c in client.containers.list(all=True)] == ["probe"]
        client.close()


def test_docker_churn_refuses_low_macs() -> None:
    # checked before the topology is looked at
    with pytest.raises(InvalidArgument, match="veth engine"):
        DockerChurn(None, mac="low")  # type: ignore[arg-type]
