"""Lab faults run through the CLI as a user runs them, several at once.

:func:`run_faults` starts ``netsleuth lab run --fault ID ARGS --store F
--run-id R --json`` for every case at the same time (each lab in its own
namespaces, so the wall time is the longest's), waits for them, and reads
``netsleuth report F --json`` of each store. A run that fails fails the
caller with the tail of its log; a run still going when the caller fails is
killed (our own child, by PID; its lab cleans up on exit, and ``lab clean``
after anything worse).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NETSLEUTH", "LabRun", "report_json", "run_faults"]

NETSLEUTH = [sys.executable, "-m", "netsleuth"]


@dataclass(frozen=True, slots=True)
class LabRun:
    fault: str
    run_id: str
    store: Path
    lab: dict[str, Any]
    """What ``lab run --json`` printed."""
    report: dict[str, Any]
    """What ``report STORE --json`` printed."""


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


def run_faults(
    tmp: Path, cases: Mapping[str, Sequence[str]], *, timeout: float = 180.0
) -> dict[str, LabRun]:
    """fault -> its run, for ``cases`` (fault -> extra ``lab run`` arguments)."""
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for fault, args in cases.items():
            run_id = f"t{secrets.token_hex(2)}"
            argv = [*NETSLEUTH, "lab", "run", "--fault", fault, *args, "--run-id", run_id]
            argv += ["--store", str(tmp / f"{fault}.sqlite"), "--json"]
            with (
                (tmp / f"{fault}.json").open("wb") as out,
                (tmp / f"{fault}.log").open("wb") as log,
            ):
                procs[fault] = (subprocess.Popen(argv, stdout=out, stderr=log), run_id)
        for fault, (proc, _) in procs.items():
            code = proc.wait(timeout=timeout)
            if code != 0:
                tail = (tmp / f"{fault}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"lab run --fault {fault} exited {code}: {tail}")
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return {
        fault: LabRun(
            fault,
            run_id,
            tmp / f"{fault}.sqlite",
            json.loads((tmp / f"{fault}.json").read_text()),
            report_json(tmp / f"{fault}.sqlite"),
        )
        for fault, (_, run_id) in procs.items()
    }
