"""Report run time on a large synthetic store (goal at 35 M probes: < 10 s for
the whole range, < 2 s for one hour).

Builds a store with the flapping-bridge scenario: the host control and
namespaces probing at 20/s each (``--targets``, default 10), a port churning
on an unpinned bridge every ``--cycle`` seconds, plus passive rows (another
series per target, ``--passive-rate`` per second) — ``--probes 35000000`` is
two days of 10 targets. The probes are written as column blocks through
``StoreWriter.put_batch``. Then times, in this one run:

- peer: ``SELECT data FROM probe_blocks`` into Python (reads every
  stored byte of the probes once: the least any report must do);
- ``analyze()`` in this process, and of it the loading (what it reads:
  ``Store.probe_groups``, the events, facts and series);
- the whole CLI, ``netsleuth report --json`` for the whole range and for
  one hour (``--since/--until``), as subprocesses (interpreter start and
  imports included), with the peak memory (RSS) of the whole range.

``--store PATH`` keeps the built store at PATH, and reuses it when it is
already there (building 35 M probes takes minutes): the other sizing options
must then be the ones it was built with.

Usage: .venv/bin/python bench/bench_report.py [--probes N] [--repeat K] [--store PATH]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

from netsleuth.analysis import analyze
from netsleuth.store import ProbeBatch, Store
from netsleuth.store.retention import store_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))  # helpers not shipped
from netsleuth_testing.synthetic import generate, write_store


def timed(func, repeat: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return median(runs)


def with_passive(batch: ProbeBatch, passive: ProbeBatch) -> ProbeBatch:
    """Both batches' attempts as one, sorted; the passive series get keys of their own."""
    n = len(batch.keys)
    keys = batch.keys + tuple((t, "passive:dns", s) for t, _p, s in passive.keys)
    order = np.argsort(np.concatenate((batch.wall_ns, passive.wall_ns)), kind="stable")

    def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return np.concatenate((a, b))[order]

    return ProbeBatch(
        keys,
        both(batch.series, passive.series + n),
        both(batch.wall_ns, passive.wall_ns),
        both(batch.mono_ns, passive.mono_ns),
        both(batch.outcome, passive.outcome),
        both(batch.latency_ns, passive.latency_ns),
        both(batch.answer, passive.answer),
        batch.answers,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=1_000_000, help="active probe attempts")
    ap.add_argument("--targets", type=int, default=10, help="host control + namespaces")
    ap.add_argument("--rate", type=float, default=20.0, help="probes/s per target")
    ap.add_argument("--passive-rate", type=float, default=2.0, help="passive rows/s per target")
    ap.add_argument("--cycle", type=float, default=60.0, help="port churn period, s")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", type=Path, help="keep the store here; reuse it if it exists")
    args = ap.parse_args()
    namespaces = args.targets - 1
    seconds = args.probes / (args.rate * args.targets)
    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "bench.sqlite"
        if path.exists():
            n_rows, n_events, start_ns, end_ns = stored_span(path)
            print(
                f"store: {n_rows} probe rows, {n_events} events, reused from {path};"
                f" {store_bytes(path) / 2**20:.0f} MiB on disk"
                f" ({store_bytes(path) / n_rows:.1f} bytes/row)"
            )
        else:
            n_rows, n_events, start_ns, end_ns = build(path, args, namespaces, seconds)
        run_timings(path, args, start_ns, end_ns)


def stored_span(path: Path) -> tuple[int, int, int, int]:
    """Rows, events, first and last wall time of a store built before."""
    conn = sqlite3.connect(path)
    rows, lo, hi = conn.execute(
        "SELECT sum(rows), min(t_start), max(t_end) FROM probe_blocks"
    ).fetchone()
    (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    conn.close()
    return int(rows), int(events), int(lo), int(hi)


def build(
    path: Path, args: argparse.Namespace, namespaces: int, seconds: float
) -> tuple[int, int, int, int]:
    """Generate the scenario and write it to ``path``; rows, events and span."""
    t0 = time.perf_counter()
    common = {"seconds": seconds, "namespaces": namespaces, "cycle_s": args.cycle}
    data = generate("flap", rate=args.rate, as_batch=True, **common)
    assert data.batch is not None
    if args.passive_rate > 0:
        passive = generate("flap", rate=args.passive_rate, as_batch=True, **common)
        assert passive.batch is not None
        data = type(data)(
            [], data.events, data.facts, data.targets, with_passive(data.batch, passive.batch)
        )
    t_gen = time.perf_counter() - t0
    write_store(path, data)
    t_build = time.perf_counter() - t0
    assert data.batch is not None
    n_rows, n_events = len(data.batch), len(data.events)
    start_ns, end_ns = int(data.batch.wall_ns[0]), int(data.batch.wall_ns[-1])
    del data
    print(
        f"store: {n_rows} probe rows ({args.probes} active + passive) over"
        f" {(end_ns - start_ns) / 3.6e12:.1f} h, {n_events} events,"
        f" {store_bytes(path) / 2**20:.0f} MiB on disk ({store_bytes(path) / n_rows:.1f}"
        f" bytes/row); built in {t_build:.1f} s ({t_gen:.1f} s generating)"
    )
    return n_rows, n_events, start_ns, end_ns


def run_timings(path: Path, args: argparse.Namespace, start_ns: int, end_ns: int) -> None:
    """Time the peer, the load, the analysis and the CLI on the store at ``path``."""

    def peer() -> None:
        conn = sqlite3.connect(path)
        sum(len(b) for (b,) in conn.execute("SELECT data FROM probe_blocks"))
        conn.close()

    loaded = {}

    def load() -> None:
        with Store(path) as store:
            series = store.series()
            targets = sorted({s.target for s in series.values()})
            place = {t: i for i, t in enumerate(targets)}
            group_of = {sid: place[s.target] for sid, s in series.items()}
            store.probe_groups(group_of, len(targets))
            store.sourced_failures()
            store.events()
            store.facts()

    def whole() -> None:
        with Store(path) as store:
            loaded["analysis"] = analyze(store)

    peak = []

    def cli(*extra: str) -> None:
        cmd = [sys.executable, "-m", "netsleuth", "report", "--store", str(path), *extra]
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL) as proc:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"report failed ({proc.returncode}): {' '.join(cmd)}")
        peak.append(usage.ru_maxrss / 1024)  # KiB -> MiB

    mid = (start_ns + end_ns) // 2 // 10**9
    hour = ("--since", str(mid), "--until", str(mid + 3600))
    t_peer = timed(peer, args.repeat)
    t_load = timed(load, args.repeat)
    t_analyze = timed(whole, args.repeat)
    t_json = timed(lambda: cli("--json"), args.repeat)
    rss = max(peak)
    t_hour = timed(lambda: cli("--json", *hour), args.repeat)
    start = [sys.executable, "-c", "import netsleuth.analysis, netsleuth.report"]
    t_start = timed(lambda: subprocess.run(start, check=True), args.repeat)
    v = loaded["analysis"].verdict
    print(f"verdict: {v.cause} bridge={v.bridge} confidence={v.confidence} p={v.p_value:.2g}")
    print(f"median of {args.repeat} runs:")
    print(f"  peer: read every probe block  {t_peer:6.2f} s")
    print(f"  load (probe_groups, events)   {t_load:6.2f} s  {t_load / t_peer:5.1f}x peer")
    print(f"  analyze() in process          {t_analyze:6.2f} s  {t_analyze / t_peer:5.1f}x peer")
    print(f"  report --json, whole range    {t_json:6.2f} s  {t_json / t_peer:5.1f}x peer")
    print(f"    peak memory (RSS)           {rss:6.0f} MiB")
    print(f"  report --json, one hour       {t_hour:6.2f} s  {t_hour / t_peer:5.1f}x peer")
    print(f"  of which start and imports    {t_start:6.2f} s  (python -c 'import ...')")
    whole_goal = "met" if t_json < 10 else "MISSED"
    one = "met" if t_hour < 2 else "MISSED"
    print(f"goal: whole range < 10 s: {whole_goal}; one hour < 2 s: {one}")


if __name__ == "__main__":
    main()
