"""A bounded store: column blocks read like rows, retention keeps minutes
beyond its window, the size cap is never exceeded and says what went, stores
of schema 1 still read, and a report reads while a writer process writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import netsleuth.store.sqlite as sqlite_store
from netsleuth.model import Outcome, ProbeResult
from netsleuth.store import ProbeBatch, Store, StoreWriter
from netsleuth.store.notes import store_notes
from netsleuth.store.retention import parse_duration, parse_size, store_bytes

_S = 1_000_000_000
KEYS = (("host", "dns:198.18.255.2/a/A", "198.18.255.2"), ("netns:c0", "dns:x/a/A", "x"))


def batch(start_ns: int, n: int, step_ns: int = 5_000_000, fail_every: int = 50) -> ProbeBatch:
    """``n`` attempts of two series alternating, every ``fail_every``-th a timeout."""
    wall = start_ns + np.arange(n, dtype=np.int64) * step_ns
    failed = np.arange(n) % fail_every == 0
    return ProbeBatch(
        keys=KEYS,
        series=np.arange(n, dtype=np.int64) % 2,
        wall_ns=wall,
        mono_ns=wall - 10**12 + np.arange(n) % 7,
        outcome=np.where(failed, int(Outcome.TIMEOUT), int(Outcome.OK)).astype(np.int8),
        latency_ns=np.where(failed, -1, 300_000 + np.arange(n) % 1000).astype(np.int64),
        answer=np.where(failed, -1, 0).astype(np.int64),
        answers=("198.18.255.10",),
    )


def test_blocks_read_back_exactly_and_ranges_trim_at_their_edges(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    b = batch(10 * _S, 40_000)
    writer = StoreWriter(path, run)
    writer.put_batch(b)
    writer.close()
    with Store(path) as store:
        assert store.probes(until_ns=0) == []
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT count(*) FROM probe_blocks").fetchone()[0] >= 3
        assert conn.execute("SELECT count(*) FROM probes").fetchone()[0] == 0
        conn.close()
        cols = store.probe_columns()
        assert cols.wall_ns.tolist() == b.wall_ns.tolist()
        assert cols.mono_ns.tolist() == b.mono_ns.tolist()
        assert cols.latency_ns.tolist() == b.latency_ns.tolist()
        assert cols.outcome.tolist() == b.outcome.tolist()
        lo, hi = int(b.wall_ns[12_345]), int(b.wall_ns[31_000])
        part = store.probe_columns(since_ns=lo, until_ns=hi)
        assert part.wall_ns.tolist() == b.wall_ns[12_345:31_000].tolist()
        failed = store.probes(since_ns=lo, until_ns=lo + 50 * 5_000_000)
        assert [p.outcome for p in failed].count(Outcome.TIMEOUT) == 1
        assert {p.answer for p in failed if p.outcome == Outcome.OK} == {"198.18.255.10"}


def test_retention_keeps_minutes_beyond_the_window_and_report_says_so(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    now = time.time_ns()
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    b = batch(now - 3 * 3600 * _S, 3 * 3600 * 20, step_ns=50_000_000)  # 3 h at 20/s
    writer = StoreWriter(path, run, retain_ns=parse_duration("1h"))
    writer.put_batch(b)
    writer.close()  # the last maintenance applies retention
    cut = now - 3600 * _S
    old = b.wall_ns < cut
    with Store(path) as store:
        raw = store.probe_columns()
        assert int(raw.wall_ns.min()) >= cut - 60 * _S  # the window, give or take a writer tick
        kept_raw = b.wall_ns >= int(raw.wall_ns.min())
        assert len(raw) == int(kept_raw.sum())
        minutes = store.minutes()
        assert int(minutes.attempts.sum()) == int((~kept_raw).sum())
        timeouts = minutes.outcome == int(Outcome.TIMEOUT)
        assert int(minutes.attempts[timeouts].sum()) == int((~kept_raw & (b.outcome == 1)).sum())
        assert int(minutes.answered.sum()) == int((~kept_raw & (b.latency_ns >= 0)).sum())
        assert int(minutes.latency_max_ns.max()) == int(b.latency_ns[~kept_raw].max())
        assert old.sum() > 0
        [dropped] = store.dropped()
        assert dropped.what == "raw probes" and dropped.reason == "retain 1h"
        notes = store_notes(store)
        assert any("per-minute aggregates only" in n and "host " in n for n in notes), notes
        assert any(n.startswith("The store was trimmed") for n in notes), notes
        # a selection in the aggregated range reads minutes, not raw attempts
        # (whole minutes: those that start in the range, its start rounded down)
        lo, hi = int(b.wall_ns[0]) + 30 * _S, int(b.wall_ns[0]) + 630 * _S
        early = store.minutes(since_ns=lo, until_ns=hi)
        minute = b.wall_ns - b.wall_ns % (60 * _S)
        assert int(early.attempts.sum()) == int(
            ((minute >= lo - lo % (60 * _S)) & (minute < hi)).sum()
        )


def test_size_cap_is_never_exceeded_and_the_drop_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    cap = parse_size("4M")
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    writer = StoreWriter(path, run, max_bytes=cap)
    sizes: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            sizes.append(store_bytes(path))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rnd = np.random.default_rng(1)
    start = 1_800_000_000 * _S
    try:
        for k in range(60):  # 60 x 20,000 attempts: several times the cap
            piece = batch(start + k * 20_000 * 5_000_000, 20_000)
            noisy = piece.latency_ns + rnd.integers(0, 10**6, len(piece))  # compresses less
            writer.put_batch(
                ProbeBatch(
                    *(getattr(piece, f) for f in ("keys", "series", "wall_ns", "mono_ns")),
                    piece.outcome,
                    np.where(piece.latency_ns < 0, -1, noisy),
                    piece.answer,
                    piece.answers,
                )
            )
            time.sleep(0.01)
    finally:
        writer.close()
        stop.set()
        sampler.join()
    assert max(sizes) <= cap, (max(sizes), cap)
    assert store_bytes(path) <= cap
    with Store(path) as store:
        dropped = store.dropped()
        assert dropped and all(d.reason == "max-store-size 4M" for d in dropped)
        assert {d.what for d in dropped} >= {"raw probes"}
        cols = store.probe_columns()
        last = start + (60 * 20_000 - 1) * 5_000_000
        assert int(cols.wall_ns.max()) == last  # the newest attempts are all there
        assert len(cols) + int(store.minutes().attempts.sum()) <= 60 * 20_000
        assert any("max-store-size 4M" in n for n in store_notes(store))


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, started_ns INTEGER NOT NULL, ended_ns INTEGER,
    host TEXT NOT NULL, kernel TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    targets TEXT NOT NULL DEFAULT '[]', args TEXT NOT NULL DEFAULT '{}');
CREATE TABLE series (id INTEGER PRIMARY KEY, target TEXT NOT NULL, probe TEXT NOT NULL,
    server TEXT NOT NULL, UNIQUE (target, probe, server));
CREATE TABLE answers (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE probes (run INTEGER NOT NULL, series INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL, outcome INTEGER NOT NULL, latency_ns INTEGER, answer INTEGER);
CREATE INDEX probes_run_time ON probes (run, wall_ns);
CREATE TABLE events (id INTEGER PRIMARY KEY, run INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL, netns TEXT NOT NULL, kind TEXT NOT NULL, ifname TEXT NOT NULL,
    subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE facts (run INTEGER NOT NULL, wall_ns INTEGER NOT NULL, netns TEXT NOT NULL,
    kind TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs VALUES (1, 1, 2, 'h', 'k', 'old', '["host"]', '{}');
INSERT INTO series VALUES (1, 'host', 'dns:s/a/A', 's');
INSERT INTO answers VALUES (1, 'from 198.18.0.2:4000');
"""


def test_a_schema_1_store_reads_and_its_rows_are_compacted_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    rows = [(1, 1, 1000 + i, 2000 + i, 1 if i % 10 == 0 else 0, None, None) for i in range(3000)]
    rows[0] = (1, 1, 1000, 2000, 1, None, 1)
    conn.executemany("INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    with Store(path) as store:
        cols = store.probe_columns()
        assert cols.wall_ns.tolist() == [1000 + i for i in range(3000)]
        assert int(cols.failed.sum()) == 300
        [sourced] = store.sourced_failures()
        assert sourced.answer == "from 198.18.0.2:4000"
        run = store.begin_run("new", [], {})
    monkeypatch.setattr(sqlite_store, "COMPACT_INTERVAL_S", 0.0)
    writer = StoreWriter(path, run)
    writer.put_probes([ProbeResult(9000, 9000, "host", "dns:s/a/A", "s", Outcome.OK)])
    time.sleep(0.3)
    writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    assert conn.execute("SELECT count(*) FROM probes WHERE run=1").fetchone() == (0,)
    conn.close()
    with Store(path) as store:
        assert store.probe_columns().wall_ns.tolist() == [*(1000 + i for i in range(3000)), 9000]


def test_a_report_reads_while_a_writer_process_writes_and_compacts(tmp_path: Path) -> None:
    """WAL readers in another process: every read sees whole batches, counts
    only grow while rows move into blocks and the cap trims, nothing fails."""
    path = tmp_path / "s.sqlite"
    script = textwrap.dedent(f"""
        import time
        import netsleuth.store.sqlite as sq
        from netsleuth.model import Outcome, ProbeResult
        from netsleuth.store import Store, StoreWriter
        sq.COMPACT_INTERVAL_S = 0.05
        STEP = 10_000_000  # 10 ms apart: the rows older than 2 s are compacted
        import netsleuth.store.blocks as blocks
        blocks.BLOCK_ROWS = 2000
        store = Store({str(path)!r}, create=True)
        writer = StoreWriter({str(path)!r}, store.begin_run("w", ["t"], {{}}), flush_interval=0.01)
        t = 0
        print("writing", flush=True)
        for n in range(300):
            writer.put_probes([ProbeResult((t + k) * STEP, t + k, "t", "p", "s", Outcome.OK)
                               for k in range(100)])
            t += 100
            time.sleep(0.01)
        writer.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    seen = []
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        with Store(path) as store:
            cols = store.probe_columns()
        seen.append(len(cols))
        assert cols.wall_ns.tolist() == list(range(0, len(cols) * 10**7, 10**7))  # whole, in order
        time.sleep(0.02)
    assert proc.wait(timeout=30) == 0
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] > seen[0], seen
    assert all(n % 100 == 0 for n in seen), seen
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM probe_blocks").fetchone()[0] > 0
    conn.close()
    with Store(path) as store:
        assert len(store.probe_columns()) == 30_000
