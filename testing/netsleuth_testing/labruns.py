"""Lab faults run through the CLI as a user runs them, many at once.

Every lab runs in its own namespaces, so labs can run side by side and the
wall time of a batch is near that of its longest. Two ways in:

- :func:`run_faults` runs one batch now: ``netsleuth lab run --fault ID ARGS
  --store F --run-id R --json`` for every case at the same time, then
  ``netsleuth report F --json`` of each store.
- The farm: a test module books its cases at import (:func:`book`, so every
  module collected has booked before the first test runs) and its fixture
  asks for them (:func:`farm_runs`). The first ask runs every booked case of
  every module, at most :data:`FARM_PARALLEL` at a time, longest first, each
  lab followed by its report; later asks find theirs done. One farm for the
  whole suite instead of one batch per module saves the sum of the batches'
  tails.

A run that fails fails only the tests that asked for it, with the tail of
its log. A run still going when the farm fails is killed (our own child, by
PID; its lab cleans up on exit, and ``lab clean`` after anything worse).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FARM_PARALLEL", "NETSLEUTH", "LabRun", "book", "farm_runs", "report_json", "run_faults"]

NETSLEUTH = [sys.executable, "-m", "netsleuth"]
FARM_PARALLEL = 6
"""Labs at once in the farm: they mostly wait on probe schedules, but two
cores also run their probe workers, dnsmasq, churn and reports."""


@dataclass(frozen=True, slots=True)
class LabRun:
    fault: str
    run_id: str
    store: Path
    lab: dict[str, Any]
    """What ``lab run --json`` printed."""
    report: dict[str, Any]
    """What ``report STORE --json`` printed (empty when not asked for)."""


@dataclass(frozen=True, slots=True)
class _Case:
    group: str
    name: str
    args: tuple[str, ...]
    report: bool

    @property
    def duration(self) -> float:
        args = list(self.args)
        if "--duration" in args:
            return float(args[args.index("--duration") + 1])
        return 30.0


def report_json(store: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [*NETSLEUTH, "report", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"report {store} failed: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _run(case: _Case, tmp: Path, timeout: float, kids: set[subprocess.Popen[bytes]]) -> LabRun:
    """One lab run (then its report), start to end."""
    run_id = f"t{secrets.token_hex(2)}"
    stem = tmp / f"{case.group}-{case.name}"
    store = stem.with_suffix(".sqlite")
    argv = [*NETSLEUTH, "lab", "run", *case.args, "--run-id", run_id, "--store", str(store)]
    out, log = stem.with_suffix(".json"), stem.with_suffix(".log")
    with out.open("wb") as out_f, log.open("wb") as log_f:
        proc = subprocess.Popen([*argv, "--json"], stdout=out_f, stderr=log_f)
    kids.add(proc)
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        kids.discard(proc)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise AssertionError(f"lab run {' '.join(case.args)} exited {code}: {tail}")
    report = report_json(store) if case.report else {}
    return LabRun(case.name, run_id, store, json.loads(out.read_text()), report)


def _run_all(cases: Sequence[_Case], tmp: Path, parallel: int, timeout: float) -> dict[_Case, Any]:
    """case -> its LabRun, or the exception it failed with."""
    kids: set[subprocess.Popen[bytes]] = set()
    done: dict[_Case, Any] = {}
    order = sorted(cases, key=lambda c: -c.duration)  # the longest start first
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = {c: pool.submit(_run, c, tmp, timeout, kids) for c in order}
            for case, future in futures.items():
                try:
                    done[case] = future.result(timeout=timeout * len(order))
                except (AssertionError, OSError, ValueError, subprocess.SubprocessError) as exc:
                    # a failed run fails only its own tests
                    done[case] = exc
    finally:
        for proc in list(kids):  # interrupted: our own children, by PID
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return done


def run_faults(
    tmp: Path, cases: Mapping[str, Sequence[str]], *, timeout: float = 180.0
) -> dict[str, LabRun]:
    """fault -> its run, for ``cases`` (fault -> extra ``lab run`` arguments),
    all at once."""
    batch = [_Case("run", f, ("--fault", f, *args), True) for f, args in cases.items()]
    done = _run_all(batch, tmp, len(batch), timeout)
    return {case.name: _unwrap(run) for case, run in done.items()}


_BOOKED: dict[str, list[_Case]] = {}
_FARMED: dict[_Case, Any] = {}
_FARM_LOCK = threading.Lock()


def book(group: str, cases: Mapping[str, Sequence[str]], *, report: bool = True) -> None:
    """Book ``cases`` (name -> full ``lab run`` arguments, ``--fault ID``
    included) for the farm under ``group`` (the module's own name for them);
    ``report``: also run ``report --json`` of each store."""
    _BOOKED[group] = [_Case(group, name, tuple(args), report) for name, args in cases.items()]


def farm_runs(
    group: str, tmp: Path, *, parallel: int = FARM_PARALLEL, timeout: float = 240.0
) -> dict[str, LabRun]:
    """name -> its run, for the cases booked under ``group``; the first call
    runs everything booked and not yet run (into ``tmp``)."""
    if group not in _BOOKED:
        raise AssertionError(f"no lab runs booked under {group!r}: call book() at import")
    with _FARM_LOCK:
        todo = [c for cases in _BOOKED.values() for c in cases if c not in _FARMED]
        if any(c.group == group for c in todo):
            _FARMED.update(_run_all(todo, tmp, parallel, timeout))
    return {case.name: _unwrap(_FARMED[case]) for case in _BOOKED[group]}


def _unwrap(run: Any) -> LabRun:
    if isinstance(run, BaseException):
        raise AssertionError(str(run)) from run
    assert isinstance(run, LabRun)
    return run
