"""A loop in a thread owned by a context manager: started on enter, stopped
and joined on exit. Churn generators and faults are built on it."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

__all__ = ["BackgroundLoop"]


class BackgroundLoop:
    """Subclasses implement :meth:`_run`, which must return soon after
    :attr:`_stop` is set (wait on it instead of sleeping)."""

    name = "lab-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
