"""Waiting on a running ``netsleuth watch`` from outside, as a report would."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from pathlib import Path

from netsleuth.errors import NetsleuthError
from netsleuth.store import Store

__all__ = ["stored_probes"]


def stored_probes(
    store: Path, want: int, proc: subprocess.Popen[str], *, within_s: float = 30.0
) -> int:
    """How many probes ``store`` holds once it holds ``want`` (read while the
    watch ``proc`` writes it); 0 if the watch exits or ``within_s`` passes
    first."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            with contextlib.suppress(NetsleuthError, sqlite3.Error), Store(store) as s:
                seen = len(s.probe_columns())
                if seen >= want:
                    return seen
        time.sleep(0.2)
    return 0
