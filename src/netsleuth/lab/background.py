"""A loop in a thread owned by a context manager: started on enter, stopped
and joined on exit. Churn generators and faults are built on it."""

from __future__ import annotations

import threading

from netsleuth.lifecycle import StartStop

__all__ = ["BackgroundLoop"]


class BackgroundLoop(StartStop):
    """Subclasses implement :meth:`_run`, which must return soon after
    :attr:`_stop` is set (wait on it instead of sleeping)."""

    name = "lab-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
