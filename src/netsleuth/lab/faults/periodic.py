"""A fault switched on now and then: on for ``on`` seconds every ``period``
seconds, the first time ``first`` seconds after it starts, and only while a
whole stretch still fits in the run's ``duration`` — so every stretch has a
clean start and end on the record. Whatever happens, it is switched off
before the loop ends.

A fault starts before the watch does, and starting the probe workers can
take seconds on a busy machine: the first stretch waits long enough for
the probes to be running, or its outage would begin with the first probe
instead of with the fault."""

from __future__ import annotations

import time

from netsleuth.errors import NetsleuthError
from netsleuth.lab.background import BackgroundLoop

__all__ = ["PeriodicFault"]


class PeriodicFault(BackgroundLoop):
    """Subclasses implement :meth:`_on` and :meth:`_off` (each quick), and
    :meth:`_again` if the fault must be renewed every ``repeat`` seconds while
    it is on (0: never)."""

    name = "lab-periodic-fault"

    def __init__(
        self,
        duration: float,
        *,
        period: float = 8.0,
        on: float = 2.5,
        first: float = 5.0,
        repeat: float = 0.0,
    ) -> None:
        if not 0 < on < period:
            raise ValueError(f"on ({on} s) must be shorter than the period ({period} s)")
        self.duration = duration
        self.period = period
        self.on = on
        self.first = first
        self.repeat = repeat
        self.stretches = 0
        """How many times the fault was switched on."""
        self.error: BaseException | None = None
        super().__init__()

    def _on(self) -> None:
        raise NotImplementedError

    def _off(self) -> None:
        raise NotImplementedError

    def _again(self) -> None:
        return None

    def _hold(self) -> bool:
        """Keep the fault on for ``on`` seconds, renewing it every ``repeat``;
        True when told to stop meanwhile."""
        end = time.monotonic() + self.on
        while (left := end - time.monotonic()) > 0:
            if self._stop.wait(min(self.repeat, left) if self.repeat else left):
                return True
            if self.repeat and end - time.monotonic() > 0:
                self._again()
        return False

    def _run(self) -> None:
        start = time.monotonic()
        deadline = start + self.duration
        at = start + self.first
        try:
            while at + self.on <= deadline:
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                self._on()
                self.stretches += 1
                try:
                    stopped = self._hold()
                finally:
                    self._off()
                if stopped:
                    return
                at += self.period
        except (OSError, NetsleuthError) as exc:
            # the lab is being torn down under us (a namespace gone): stop quietly
            self.error = exc
