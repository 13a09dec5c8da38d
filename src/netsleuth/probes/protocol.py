"""The messages between the watch engine and a probe worker, over one pipe.

Engine to worker: a :class:`WorkerConfig` first, later a :class:`Stop`.
Worker to engine: :class:`Ready` (the probes it runs, in index order), then
:class:`Results` batches, and at the end :class:`Done` or :class:`Failed`.
Nothing else crosses the pipe; a side that receives anything else stops
trusting the other.

A result batch holds up to tens of thousands of attempts a second, so it is
kept in columns (one tuple per field) rather than one object per attempt:
it pickles as compactly as plain tuples, and :meth:`Results.rows` zips it
back into :data:`ResultRow` tuples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from netsleuth.errors import NetsleuthError
from netsleuth.model import Outcome

__all__ = [
    "Done",
    "EngineMessage",
    "Failed",
    "ProbeSlot",
    "ProtocolError",
    "Ready",
    "ResultRow",
    "Results",
    "Stop",
    "WorkerConfig",
    "WorkerMessage",
    "WorkerStats",
]


class ProtocolError(NetsleuthError):
    """A message that is not one of the protocol's, or not where it may come."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker is to probe, and from where (the first message it gets)."""

    target: str
    netns_path: str | None  # None: stay in the namespace we were started in
    netns_name: str | None  # named namespaces get /etc/netns/NAME bound over /etc
    probes: tuple[str, ...]
    rate: float
    timeout: float
    jitter: float = 0.1
    count: int | None = None  # attempts per probe, None for unbounded
    seed: int | None = None
    resolv_conf: str | None = None  # where dns:NAME finds its servers; None: /etc/resolv.conf


@dataclass(frozen=True, slots=True)
class Stop:
    """Engine to worker: send no more attempts, finish those in flight, report."""


@dataclass(frozen=True, slots=True)
class ProbeSlot:
    """One probe a worker runs, as stored: its canonical text and its server."""

    text: str
    server: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker's probes after expansion; a result's index is a position here."""

    probes: tuple[ProbeSlot, ...]


# (probe index, wall_ns, mono_ns, outcome, latency_ns or None, answer)
ResultRow: TypeAlias = tuple[int, int, int, Outcome, int | None, str]


@dataclass(frozen=True, slots=True)
class Results:
    """A batch of attempts, one tuple per field, all of the same length."""

    index: tuple[int, ...]
    wall_ns: tuple[int, ...]
    mono_ns: tuple[int, ...]
    outcome: tuple[Outcome, ...]
    latency_ns: tuple[int | None, ...]  # None when no answer came back
    answer: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.index)
        columns = (self.wall_ns, self.mono_ns, self.outcome, self.latency_ns, self.answer)
        if any(len(c) != n for c in columns):
            raise ValueError("result columns of different lengths")

    @classmethod
    def of(cls, rows: Sequence[ResultRow]) -> Results:
        if not rows:
            return cls((), (), (), (), (), ())
        index, wall, mono, outcome, latency, answer = zip(*rows, strict=True)
        return cls(index, wall, mono, outcome, latency, answer)

    def __len__(self) -> int:
        return len(self.index)

    def rows(self) -> Iterator[ResultRow]:
        columns = (self.index, self.wall_ns, self.mono_ns, self.outcome, self.latency_ns)
        return zip(*columns, self.answer, strict=True)  # checked here too: unpickling skips init


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """How well the worker kept its schedule."""

    sent: int  # attempts sent
    max_lag_ms: float  # the latest an attempt went out after its slot
    late: int  # attempts sent more than 10 ms after their slot

    def to_json(self) -> dict[str, int | float]:
        return {"sent": self.sent, "max_lag_ms": self.max_lag_ms, "late": self.late}


@dataclass(frozen=True, slots=True)
class Done:
    """The worker stopped as asked (or its --count ran out)."""

    stats: WorkerStats


@dataclass(frozen=True, slots=True)
class Failed:
    """The worker could not go on; ``message`` is one line for the user."""

    message: str


WorkerMessage: TypeAlias = Ready | Results | Done | Failed
EngineMessage: TypeAlias = WorkerConfig | Stop
