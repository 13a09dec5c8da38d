"""The ``with`` protocol for objects that own a thread, a process, a server or
a file: entering starts them if they must be started, leaving always stops or
closes them, however the block ends."""

from __future__ import annotations

from typing import Self

__all__ = ["Closing", "StartStop"]


class StartStop:
    """``with obj:`` calls :meth:`start`, and :meth:`stop` on the way out."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Closing:
    """``with obj:`` gives the (already running) object, and calls
    :meth:`close` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
