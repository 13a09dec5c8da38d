"""The lab's confusion matrix: does `report` name the cause that was injected?

For every fault of :data:`netsleuth.lab.faults.FAULTS` (the registry, read at
run time, so new faults are included; recorded ones too) and ``none``, one
after the other, ``--runs`` times each:

    netsleuth lab run --fault ID --duration D --store F --json
    netsleuth report F --json

and ``verdict.cause`` plus the other causes the report named. ``none`` runs
with ``--churn none`` (nothing injected at all; the lab's default for no
fault is the bridge churn), and counts as right when no cause is named
(``no-failures`` or ``unknown``). A lab run that fails is recorded with its
error and the next one goes on.

Prints the matrix (rows: the fault injected, columns: the verdict, plus the
other named causes), the accuracy (the diagonal's share of all runs), and
each fault's run time. Run as root.

    .venv/bin/python bench/bench_accuracy.py [--duration 25] [--runs 1]
        [--faults none,nat-missing] [--keep DIR] [--lab-arg=--containers=2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from netsleuth.lab.faults import ALIASES, FAULTS

NO_CAUSE = ("no-failures", "unknown")
"""Verdicts that name no cause: the right answer when nothing was injected."""

OTHER = "other named causes"


@dataclass
class RunResult:
    fault: str
    run: int
    verdict: str | None = None
    """``verdict.cause`` of the report; None when the run failed."""
    p_value: float | None = None
    confidence: str | None = None
    named: list[str] = field(default_factory=list)
    """Every cause the report named (``causes[].named``), the verdict included."""
    lab_s: float = 0.0
    report_s: float = 0.0
    seed: int | None = None
    error: str = ""

    @property
    def correct(self) -> bool:
        return self.verdict is not None and self.verdict in expected(self.fault)

    @property
    def others(self) -> list[str]:
        return [c for c in self.named if c != self.verdict]


def expected(fault: str) -> tuple[str, ...]:
    return NO_CAUSE if fault == "none" else (fault,)


def all_faults() -> list[str]:
    """``none`` and every fault of the registry, in its order."""
    return ["none", *FAULTS]


def choose(spec: Sequence[str] | None) -> list[str]:
    """The faults asked for (comma-separated, repeatable; aliases allowed)."""
    known = all_faults()
    if not spec:
        return known
    out: list[str] = []
    for part in (p.strip() for s in spec for p in s.split(",")):
        if not part:
            continue
        fid = ALIASES.get(part, part)
        if fid not in known:
            raise SystemExit(f"--faults {part}: unknown; use some of {', '.join(known)}")
        if fid not in out:
            out.append(fid)
    return out


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-500:]


def _run(argv: list[str], timeout: float, log: Path) -> tuple[int | None, str, float]:
    """Run a child (ours, by PID), its stderr to ``log``; (code, stdout, seconds).
    Code None: it timed out and was ended. Ctrl-C ends it the same way (the
    lab removes its namespaces on SIGTERM) before passing on."""
    t0 = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            proc.terminate()  # SIGTERM unwinds netsleuth like Ctrl-C (even if SIGINT is ignored)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
            if isinstance(exc, KeyboardInterrupt):
                raise
            return None, "", time.monotonic() - t0
    return proc.returncode, out, time.monotonic() - t0


def one_run(fault: str, run: int, args: argparse.Namespace, workdir: Path) -> RunResult:
    res = RunResult(fault, run)
    store = workdir / f"{fault}-{run}.sqlite"
    store.unlink(missing_ok=True)
    lab = [sys.executable, "-m", "netsleuth", "lab", "run", "--fault", fault,
           "--duration", f"{args.duration:g}", "--store", str(store), "--json"]  # fmt: skip
    if fault == "none":
        lab += ["--churn", "none"]
    lab += args.lab_arg
    log = workdir / f"{fault}-{run}.lab.log"
    code, out, res.lab_s = _run(lab, args.duration * 3 + 180, log)
    if code != 0:
        why = "timed out" if code is None else f"exit {code}"
        res.error = f"lab run {why}: {_tail(log.read_text())}"
        return res
    try:
        cases = json.loads(out).get("cases", [])
        seed = cases[0].get("extra", {}).get("seed") if cases else None
        res.seed = seed if isinstance(seed, int) else None
    except (json.JSONDecodeError, AttributeError, IndexError):
        pass  # the seed is a nicety; the store is what counts
    rlog = workdir / f"{fault}-{run}.report.log"
    code, out, res.report_s = _run(
        [sys.executable, "-m", "netsleuth", "report", str(store), "--json"], 300, rlog
    )
    if code != 0:
        why = "timed out" if code is None else f"exit {code}"
        res.error = f"report {why}: {_tail(rlog.read_text())}"
        return res
    try:
        report = json.loads(out)
        verdict = report["verdict"]
        res.verdict = str(verdict["cause"])
        p = verdict.get("p_value")
        res.p_value = float(p) if isinstance(p, int | float) else None
        res.confidence = verdict.get("confidence")
        res.named = [str(c["cause"]) for c in report.get("causes", []) if c.get("named")]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        res.error = f"report JSON unreadable: {exc}"
    return res


# -- the matrix --------------------------------------------------------------------


def columns(faults: Sequence[str], results: Sequence[RunResult]) -> list[str]:
    """The verdicts seen: fault ids in row order, then the rest, then errors."""
    seen = {r.verdict for r in results if r.verdict is not None}
    cols = [f for f in faults if f in seen]
    cols += [c for c in NO_CAUSE if c in seen and c not in cols]
    cols += sorted(seen - set(cols))
    if any(r.verdict is None for r in results):
        cols.append("error")
    return cols


def matrix(faults: Sequence[str], results: Sequence[RunResult]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {f: {} for f in faults}
    for r in results:
        col = r.verdict if r.verdict is not None else "error"
        out[r.fault][col] = out[r.fault].get(col, 0) + 1
    return out


def summary(faults: Sequence[str], results: Sequence[RunResult]) -> dict[str, Any]:
    done = [r for r in results if r.verdict is not None]
    correct = sum(r.correct for r in results)
    per_fault = {}
    for f in faults:
        mine = [r for r in results if r.fault == f]
        others: Counter[str] = Counter(c for r in mine for c in r.others)
        per_fault[f] = {
            "runs": len(mine),
            "correct": sum(r.correct for r in mine),
            "expected": list(expected(f)),
            "other_named": dict(others),
            "lab_s_mean": statistics.fmean(r.lab_s for r in mine) if mine else None,
            "report_s_mean": statistics.fmean(r.report_s for r in done if r.fault == f)
            if any(r.fault == f for r in done)
            else None,
            "errors": [r.error for r in mine if r.error],
        }
    return {
        "runs": len(results),
        "completed": len(done),
        "correct": correct,
        "accuracy": correct / len(results) if results else None,
        "accuracy_completed": (sum(r.correct for r in done) / len(done)) if done else None,
        "columns": columns(faults, results),
        "matrix": matrix(faults, results),
        "per_fault": per_fault,
    }


def show(faults: Sequence[str], results: Sequence[RunResult], s: dict[str, Any]) -> None:
    cols: list[str] = s["columns"]
    mat: dict[str, dict[str, int]] = s["matrix"]
    first = max([len("injected \\ verdict"), *(len(f) for f in faults)])
    widths = [max(len(c), 3) for c in cols]
    head = (
        "injected \\ verdict".ljust(first)
        + "  "
        + "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))
    )
    print(head + f"  {OTHER}")
    print("-" * (len(head) + len(OTHER) + 2))
    for f in faults:
        cells = []
        for c, w in zip(cols, widths, strict=True):
            n = mat[f].get(c, 0)
            mark = "*" if c in expected(f) and n else ""
            cells.append((f"{n}{mark}" if n else ".").rjust(w))
        others = s["per_fault"][f]["other_named"]
        other = ", ".join(f"{k} ({v})" for k, v in sorted(others.items())) or "-"
        print(f.ljust(first) + "  " + "  ".join(cells) + f"  {other}")
    print("(* the right answer; none is right when no cause is named: no-failures or unknown)")
    acc = s["accuracy"]
    print(
        f"accuracy: {s['correct']}/{s['runs']} runs"
        + (f" = {100 * acc:.0f} %" if acc is not None else "")
        + (
            f" ({s['completed']} completed, {100 * s['accuracy_completed']:.0f} % of those)"
            if s["completed"] != s["runs"] and s["accuracy_completed"] is not None
            else ""
        )
    )
    print("per fault: runs, right, mean lab run time, mean report time")
    for f in faults:
        pf = s["per_fault"][f]
        lab = f"{pf['lab_s_mean']:.1f} s" if pf["lab_s_mean"] is not None else "-"
        rep = f"{pf['report_s_mean']:.1f} s" if pf["report_s_mean"] is not None else "-"
        print(f"  {f:<{first}}  {pf['runs']}  {pf['correct']}  lab {lab}  report {rep}")
        for err in pf["errors"]:
            print(f"    error: {err}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=25.0, help="seconds per lab run")
    parser.add_argument("--runs", type=int, default=1, help="runs per fault")
    parser.add_argument(
        "--faults", action="append", help="only these (comma-separated; default: all and none)"
    )
    parser.add_argument("--keep", type=Path, help="keep stores and logs in this directory")
    parser.add_argument(
        "--lab-arg",
        action="append",
        default=[],
        help="extra argument for every `lab run` (repeat; write --lab-arg=--x)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs: 1 to 100")
    if not 5 <= args.duration <= 3600:
        parser.error("--duration: 5 to 3600 s")
    if os.geteuid() != 0:
        raise SystemExit("bench_accuracy needs root (the lab builds network namespaces)")
    faults = choose(args.faults)
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[RunResult] = []
    tmp = None
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nsl-accuracy-")
        workdir = Path(tmp.name)
    total = len(faults) * args.runs
    interrupted = False
    try:
        for run in range(1, args.runs + 1):
            for fault in faults:
                r = one_run(fault, run, args, workdir)
                results.append(r)
                what = r.error or (
                    f"verdict {r.verdict}"
                    + (f" (p={r.p_value:.2g})" if r.p_value is not None else "")
                    + (f", also named {', '.join(r.others)}" if r.others else "")
                )
                mark = "ok " if r.correct else "-- "
                print(
                    f"[{len(results)}/{total}] {mark}{fault} run {run}: {what} "
                    f"(lab {r.lab_s:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the runs so far", file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    s = summary(faults, results)
    if args.json:
        out = {
            "duration": args.duration,
            "runs_per_fault": args.runs,
            "faults": faults,
            "lab_args": args.lab_arg,
            **s,
            "results": [{**asdict(r), "correct": r.correct} for r in results],
            "interrupted": interrupted,
        }
        print(json.dumps(out, indent=2))
    else:
        show(faults, results, s)
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
