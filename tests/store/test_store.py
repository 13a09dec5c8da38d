import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netsleuth.errors import StoreError
from netsleuth.model import EventKind, NetEvent, Outcome, ProbeResult
from netsleuth.store import SCHEMA_VERSION, Store, StoreWriter


def _probe(i: int, outcome: Outcome = Outcome.OK) -> ProbeResult:
    return ProbeResult(
        1_000 + i,
        2_000 + i,
        "netns:c0",
        "dns:198.18.255.2/www.lab.test/A",
        "198.18.255.2",
        outcome,
        5_000 if outcome == Outcome.OK else None,
        "198.18.255.80" if outcome == Outcome.OK else "",
    )


def test_round_trip_probes_events_facts(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", ["netns:c0"], {"rate": 20})
        writer = StoreWriter(path, run)
        writer.put_probes([_probe(0), _probe(1, Outcome.TIMEOUT), _probe(2)])
        writer.put_event(
            NetEvent(
                1_001, 2_001, "host", EventKind.MAC_CHANGED, "br0", "", {"old": "a", "new": "b"}
            )
        )
        writer.close()
        store.add_fact(run, "host", "bridge", "br0", {"pinned": False})
        store.end_run(run)
    with Store(path) as store:
        assert [p.outcome for p in store.probes()] == [Outcome.OK, Outcome.TIMEOUT, Outcome.OK]
        assert store.probes()[0] == _probe(0)
        cols = store.probe_columns(runs=[run])
        assert cols.failed.tolist() == [False, True, False]
        assert cols.latency_ns.tolist() == [5_000, -1, 5_000]
        assert store.probe_columns(since_ns=1_001).wall_ns.tolist() == [1_001, 1_002]
        [event] = store.events()
        assert event.kind == EventKind.MAC_CHANGED and event.detail == {"old": "a", "new": "b"}
        assert store.facts()[0]["data"] == {"pinned": False}
        [info] = store.runs()
        assert info.targets == ["netns:c0"] and info.ended_ns is not None


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer netsleuth"):
        Store(path)


def test_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        Store(junk)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE x (a)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError):
        Store(other)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.sqlite")


def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """A writer killed with SIGKILL keeps everything older than about a second."""
    path = tmp_path / "s.sqlite"
    script = textwrap.dedent(f"""
        import sys, time
        from netsleuth.model import Outcome, ProbeResult
        from netsleuth.store import Store, StoreWriter
        store = Store({str(path)!r}, create=True)
        writer = StoreWriter({str(path)!r}, store.begin_run("kill", ["t"], {{}}))
        i = 0
        while True:
            writer.put_probes([ProbeResult(time.time_ns(), time.monotonic_ns(), "t", "p", "s",
                                           Outcome.OK)])
            i += 1
            if i == 50:
                print("writing", flush=True)
            time.sleep(0.002)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    time.sleep(2.0)
    killed_at = time.time_ns()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(path) as store:
        cols = store.probe_columns()
    assert len(cols) > 100
    assert killed_at - int(cols.wall_ns.max()) < 1_000_000_000
