"""Churn like a CI host: veth ports join the lab bridge for ``t_in`` seconds,
leave, and the bridge stays without them for ``t_out`` seconds — bounded by a
duration and owned by the context manager that starts it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from netsleuth.errors import NetsleuthError
from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.topology import LabTopology, seeded_mac
from netsleuth.netns import Links, Namespace

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
        if self._stop.wait(min(self.delay, self.duration)):
            return
        try:
            Namespace.named(self.topo.host_ns).run(lambda: self._loop(deadline))
        except (OSError, NetsleuthError) as exc:
            # The lab is being torn down under us (namespace gone): stop quietly.
            self.error = exc

    def _loop(self, deadline: float) -> None:
        """The cycles until ``deadline``, in a thread inside the lab's host namespace."""
        cycle = 0
        with Links() as links:
            bridge = links.index(self.topo.bridge)
            while not self._stop.is_set() and time.monotonic() < deadline:
                cycle += 1
                port = f"vch{cycle % 1000}"
                self._join(links, bridge, port, cycle)
                try:
                    self._stop.wait(min(self.t_in, max(0.0, deadline - time.monotonic())))
                finally:
                    self._leave(links, port)
                if self._stop.is_set() or time.monotonic() >= deadline:
                    break
                self._stop.wait(min(self.t_out, max(0.0, deadline - time.monotonic())))

    def _join(self, links: Links, bridge: int, port: str, cycle: int) -> None:
        mac = None
        if self.mac == "low":
            mac = low_mac(cycle)
        elif self.seed is not None:
            mac = seeded_mac(self.seed, f"churn{cycle}")
        idx = links.add_veth(port, f"{port}p", mac=mac)
        links.set(links.index(f"{port}p"), up=True)
        links.set(idx, master=bridge, up=True)
        self.steps.append(ChurnStep(time.monotonic_ns(), "join", port, links.link(idx).mac))

    def _leave(self, links: Links, port: str) -> None:
        idx = links.find(port)
        if idx is not None:
            mac = links.link(idx).mac
            links.delete(idx)
            self.steps.append(ChurnStep(time.monotonic_ns(), "leave", port, mac))
