"""Report run time on a synthetic store of 1,000,000 probes (goal: < 10 s).

Builds a store with the flapping-bridge scenario (host control + 3 namespaces,
20 probes/s each, port churn every 3 s: ~3.5 hours of watching), then times
in this one run:

- peer: a plain ``SELECT series, count(*), sum(outcome<>0) ... GROUP BY series``
  over the same store (the least any report must do: read every probe once);
- ``analyze()`` split into loading (``Store.probe_columns`` etc.) and the
  pure analysis;
- the whole CLI, ``netsleuth report --json`` and ``--html``, as subprocesses
  (interpreter start and imports included).

Usage: .venv/bin/python bench/bench_report.py [--probes N] [--repeat K]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from netsleuth.analysis import analyze_data
from netsleuth.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))  # helpers not shipped
from netsleuth_testing.synthetic import generate, write_store


def timed(func, repeat: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    namespaces, rate = 3, 20.0
    seconds = args.probes / (rate * (namespaces + 1))
    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        t0 = time.perf_counter()
        data = generate("flap", seconds=seconds, rate=rate, namespaces=namespaces)
        write_store(path, data)
        n_probes, n_events = len(data.probes), len(data.events)
        del data
        print(
            f"store: {n_probes} probes, {n_events} events, {path.stat().st_size / 2**20:.0f} MiB"
            f" (built in {time.perf_counter() - t0:.1f} s)"
        )

        def peer() -> None:
            conn = sqlite3.connect(path)
            conn.execute(
                "SELECT series, count(*), sum(outcome <> 0) FROM probes GROUP BY series"
            ).fetchall()
            conn.close()

        loaded = {}

        def load() -> None:
            with Store(path) as store:
                loaded["args"] = (
                    store.probe_columns(),
                    store.series(),
                    store.events(),
                    store.facts(),
                )

        def pure() -> None:
            cols, series, events, facts = loaded["args"]
            loaded["analysis"] = analyze_data(cols, series, events, facts)

        def cli(*extra: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "netsleuth", "report", "--store", str(path), *extra],
                check=True,
                stdout=subprocess.DEVNULL,
            )

        t_peer = timed(peer, args.repeat)
        t_load = timed(load, args.repeat)
        t_pure = timed(pure, args.repeat)
        t_json = timed(lambda: cli("--json"), args.repeat)
        t_html = timed(lambda: cli("--json", "--html", str(Path(tmp) / "r.html")), args.repeat)
        v = loaded["analysis"].verdict
        print(f"verdict: {v.cause} bridge={v.bridge} confidence={v.confidence} p={v.p_value:.2g}")
        print(f"median of {args.repeat} runs:")
        print(f"  peer GROUP BY count           {t_peer:6.2f} s")
        print(f"  load (probe_columns, events)  {t_load:6.2f} s  {t_load / t_peer:5.1f}x peer")
        print(f"  analysis (pure)               {t_pure:6.2f} s  {t_pure / t_peer:5.1f}x peer")
        print(f"  netsleuth report --json       {t_json:6.2f} s  {t_json / t_peer:5.1f}x peer")
        print(f"  netsleuth report --html       {t_html:6.2f} s  {t_html / t_peer:5.1f}x peer")
        goal = "met" if t_html < 10 else "MISSED"
        print(f"goal: report on {n_probes} probes < 10 s: {goal}")


if __name__ == "__main__":
    main()
