"""The exporter's doctor loop: audit the host every few seconds and export
what it found.

Each round reads the snapshots (injectable; by default
:func:`netsleuth.audit.read_targets`), runs the audit rules on them, and
hands the findings and every bridge's pinned state to :class:`WatchMetrics`.
Bridges that disappeared since the last round stop being exported. The loop
runs in one thread that :meth:`DoctorLoop.close` stops and joins.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from netsleuth.audit import HostSnapshot, audit
from netsleuth.errors import NetsleuthError
from netsleuth.lifecycle import Closing
from netsleuth.metrics.collector import WatchMetrics
from netsleuth.model import Finding

__all__ = ["DoctorLoop"]

ReadSnapshots = Callable[[], Sequence[HostSnapshot]]


class DoctorLoop(Closing):
    """Runs ``doctor`` every ``interval`` seconds and feeds ``metrics``.

    ``on_error`` gets the one-line message of a round that failed (the next
    round tries again); ``on_round`` the findings of a round that worked.
    """

    def __init__(
        self,
        metrics: WatchMetrics,
        interval: float,
        read: ReadSnapshots,
        *,
        on_error: Callable[[str], None] = lambda message: None,
        on_round: Callable[[list[Finding]], None] = lambda findings: None,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.metrics = metrics
        self.interval = interval
        self._read = read
        self._on_error = on_error
        self._on_round = on_round
        self._bridges: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Finding] | None:
        """One round; the findings, or None when the host could not be read."""
        try:
            snapshots = list(self._read())
        except (NetsleuthError, OSError) as exc:
            self.metrics.doctor_failed()
            self._on_error(f"doctor could not read the host: {exc}")
            return None
        findings = audit(snapshots)
        bridges = {
            (snap.netns, link.name): link.pinned
            for snap in snapshots
            for link in snap.bridges
            if link.addr_assign_type is not None
        }
        for netns, name in self._bridges - bridges.keys():
            self.metrics.forget_bridge(name, netns)
        for (netns, name), pinned in bridges.items():
            self.metrics.set_bridge(name, pinned, netns)
        self._bridges = set(bridges)
        self.metrics.set_findings(findings)
        self._on_round(findings)
        return findings

    def start(self) -> None:
        """Run a first round now, then one every ``interval`` in a thread."""
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="netsleuth-doctor")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until closed or ``timeout`` passes; True if closed."""
        return self._stop.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
