"""Churn like a CI host: veth ports join the lab bridge for ``t_in`` seconds,
leave, and the bridge stays without them for ``t_out`` seconds — bounded by a
duration and owned by the context manager that starts it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.topology import LabTopology, seeded_mac

__all__ = ["Churn", "ChurnStep", "low_mac"]

ChurnMac = Literal["random", "low"]


def low_mac(cycle: int) -> str:
    """A MAC below any random or container MAC (02:00:00:...), new every cycle,
    so the bridge takes it on join and the departing port takes it away."""
    return f"02:00:00:00:{(cycle >> 8) & 0xFF:02x}:{cycle & 0xFF:02x}"


@dataclass(frozen=True, slots=True)
class ChurnStep:
    mono_ns: int
    action: Literal["join", "leave"]
    port: str
    mac: str


class Churn(BackgroundLoop):
    name = "lab-churn"

    """Context manager running the churn loop in a thread it owns and joins.

    ``steps`` is the churn's own log of what it did (an independent record to
    check the event monitor against).
    """

    def __init__(
        self,
        topo: LabTopology,
        *,
        mac: ChurnMac = "random",
        t_in: float = 2.0,
        t_out: float = 1.0,
        duration: float = 30.0,
        seed: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.topo = topo
        self.mac = mac
        self.t_in = t_in
        self.t_out = t_out
        self.duration = duration
        self.seed = seed
        self.delay = delay  # seconds before the first port joins, within ``duration``
        self.steps: list[ChurnStep] = []
        self.error: BaseException | None = None
        super().__init__()

    @property
    def cycles(self) -> int:
        return sum(1 for s in self.steps if s.action == "join")

    def _run(self) -> None:
        deadline = time.monotonic() + self.duration
        cycle = 0
        if self._stop.wait(min(self.delay, self.duration)):
            return
        try:
            with IPRoute(netns=self.topo.host_ns) as ipr:
                bridge = ipr.link_lookup(ifname=self.topo.bridge)[0]
                while not self._stop.is_set() and time.monotonic() < deadline:
                    cycle += 1
                    port = f"vch{cycle % 1000}"
                    self._join(ipr, bridge, port, cycle)
                    try:
                        self._stop.wait(min(self.t_in, max(0.0, deadline - time.monotonic())))
                    finally:
                        self._leave(ipr, port)
                    if self._stop.is_set() or time.monotonic() >= deadline:
                        break
                    self._stop.wait(min(self.t_out, max(0.0, deadline - time.monotonic())))
        except NetlinkError as exc:
            # The lab is being torn down under us (namespace gone): stop quietly.
            self.error = exc

    def _join(self, ipr: IPRoute, bridge: int, port: str, cycle: int) -> None:
        peer = {"ifname": f"{port}p"}
        args: dict[str, object] = {"ifname": port, "kind": "veth", "peer": peer}
        if self.mac == "low":
            args["address"] = low_mac(cycle)
        elif self.seed is not None:
            args["address"] = seeded_mac(self.seed, f"churn{cycle}")
        ipr.link("add", **args)
        idx = ipr.link_lookup(ifname=port)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=f"{port}p")[0], state="up")
        ipr.link("set", index=idx, master=bridge, state="up")
        mac = ipr.get_links(idx)[0].get("address")
        self.steps.append(ChurnStep(time.monotonic_ns(), "join", port, mac))

    def _leave(self, ipr: IPRoute, port: str) -> None:
        found = ipr.link_lookup(ifname=port)
        if found:
            mac = ipr.get_links(found[0])[0].get("address")
            ipr.link("del", index=found[0])
            self.steps.append(ChurnStep(time.monotonic_ns(), "leave", port, mac))
