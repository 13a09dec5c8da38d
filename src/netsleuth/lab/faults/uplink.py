"""The uplink losing its address now and then (``address-lost``), as when a
DHCP lease runs out or a network manager reconfigures the interface: the
lab host namespace's uplink has no address (and so no route out) for a few
seconds, then gets it back. Nothing leaves, the host's own traffic neither."""

from __future__ import annotations

import shutil
import subprocess

from netsleuth.errors import NetsleuthError
from netsleuth.lab.faults.periodic import PeriodicFault
from netsleuth.lab.topology import LabTopology
from netsleuth.netns import Links, Namespace

__all__ = ["AddressLoss", "ipv4_addresses"]


def ipv4_addresses(ns: str, ifname: str) -> list[str]:
    """The IPv4 addresses of ``ifname`` in namespace ``ns``, as ``a.b.c.d/len``."""

    def read() -> list[str]:
        with Links() as links:
            index = links.index(ifname)
            return [
                f"{a.address}/{a.prefixlen}"
                for a in links.addresses()
                if a.index == index and ":" not in a.address
            ]

    return Namespace.named(ns).run(read)


def _ip(ns: str, *argv: str) -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    proc = subprocess.run([ip, "-n", ns, *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetsleuthError(f"ip {' '.join(argv)} failed in {ns}: {proc.stderr.strip()}")


class AddressLoss(PeriodicFault):
    """Remove the uplink's IPv4 addresses for ``on`` s every ``period`` s;
    they (and with them the routes through the uplink) come back after."""

    name = "lab-address-loss"

    def __init__(
        self, topo: LabTopology, duration: float, *, period: float = 7.0, on: float = 2.5
    ) -> None:
        self.topo = topo
        self.addresses: list[str] = []
        super().__init__(duration, period=period, on=on)

    def start(self) -> None:
        self.addresses = ipv4_addresses(self.topo.host_ns, self.topo.uplink)
        if not self.addresses:
            raise NetsleuthError(f"{self.topo.uplink} in {self.topo.host_ns} has no address")
        super().start()

    def _on(self) -> None:
        for addr in self.addresses:
            _ip(self.topo.host_ns, "addr", "del", addr, "dev", self.topo.uplink)

    def _off(self) -> None:
        for addr in self.addresses:
            _ip(self.topo.host_ns, "addr", "replace", addr, "dev", self.topo.uplink)
