"""Keeping a store bounded: compaction, retention, the size cap.

Three steps, all run by the :class:`~netsleuth.store.StoreWriter`'s thread on
its own schedule (never per insert), each in short transactions so that
readers and the probes keep going:

- **compaction**: the rows a writer inserts into ``probes`` (so that a report
  sees them within a flush interval) are moved, once a block's worth has
  gathered, into column blocks (:mod:`netsleuth.store.blocks`);
- **retention** (``watch --retain 14d``): attempts older than the window are
  replaced by per-minute aggregates in ``probe_minutes`` (per run, series,
  minute and outcome: attempts, answered, latency sum and maximum). Events
  and facts are kept: they are small, and the causes are scored from them;
- **size cap** (``watch --max-store-size 2G``): when database and
  write-ahead log reach :data:`HIGH_WATER` of the cap, the oldest raw
  attempts are aggregated, then, if that is not enough, the oldest
  aggregates and events are removed, a small step at a time, until the store
  is below :data:`LOW_WATER`; freed pages go back to the file system
  (``auto_vacuum=INCREMENTAL`` and a checkpoint that truncates the log).

Every removal is recorded in the ``dropped`` table (merged with the previous
record of the same kind and reason), which ``report`` shows in one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netsleuth.store import blocks

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "aggregate_before",
    "compact_hot",
    "drop_before",
    "enforce_cap",
    "format_duration",
    "format_size",
    "insert_blocks",
    "minute_rows",
    "parse_duration",
    "parse_size",
    "store_bytes",
]

MINUTE_NS = 60_000_000_000
HIGH_WATER = 0.85
"""The share of the cap at which the writer starts to make room."""
LOW_WATER = 0.70
"""The share of the cap it makes room down to."""
STEP = 0.05
"""At most this share of the cap is rewritten per step (the log holds a step)."""
_MAX_STEPS = 200
_I64 = npt.NDArray[np.int64]

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """Bytes of ``500M``, ``2G``, ``1.5g``, ``800k`` or a plain number (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise ValueError(f"cannot read size {text!r}; use e.g. 500M, 2G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def parse_duration(text: str) -> int:
    """Nanoseconds of ``14d``, ``36h``, ``90m``, ``2w``, ``3600s``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not m:
        raise ValueError(f"cannot read duration {text!r}; use e.g. 14d, 36h, 90m")
    return int(float(m.group(1)) * _DURATION_UNITS[m.group(2)] * 1_000_000_000)


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "k"):
        if n >= _SIZE_UNITS[unit.lower()]:
            return f"{n / _SIZE_UNITS[unit.lower()]:.3g}{unit}"
    return str(n)


def format_duration(ns: int) -> str:
    s = ns / 1e9
    for unit in ("w", "d", "h", "m"):
        if s >= _DURATION_UNITS[unit] and s % _DURATION_UNITS[unit] == 0:
            return f"{s / _DURATION_UNITS[unit]:.0f}{unit}"
    return f"{s:g}s"


def store_bytes(path: Path) -> int:
    """Bytes on disk of the database, its write-ahead log and shared memory."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(f"{path}{suffix}").st_size
    return total


# -- blocks -------------------------------------------------------------------


def insert_blocks(
    conn: sqlite3.Connection,
    run: int,
    *,
    series: _I64,
    wall_ns: _I64,
    mono_ns: _I64,
    outcome: npt.NDArray[np.int8],
    latency_ns: _I64,
    answer: _I64,
) -> int:
    """Insert attempts sorted by wall time as blocks; returns bytes written."""
    written = 0
    rows = []
    for a in range(0, len(wall_ns), blocks.BLOCK_ROWS):
        b = a + blocks.BLOCK_ROWS
        blob = blocks.encode(
            series[a:b],
            wall_ns[a:b],
            mono_ns=mono_ns[a:b],
            outcome=outcome[a:b],
            latency_ns=latency_ns[a:b],
            answer=answer[a:b],
        )
        written += len(blob)
        rows.append((run, int(wall_ns[a]), int(wall_ns[a:b][-1]), len(wall_ns[a:b]), blob))
    conn.executemany(
        "INSERT INTO probe_blocks (run, t_start, t_end, rows, data) VALUES (?, ?, ?, ?, ?)", rows
    )
    return written


def _hot_arrays(rows: Sequence[Sequence[int]]) -> list[_I64]:
    data = np.array(rows, dtype=np.int64).reshape(-1, 8)
    return [data[:, k].copy() for k in range(8)]


_HOT_COLUMNS = (
    "rowid, run, series, wall_ns, mono_ns, outcome, coalesce(latency_ns, -1), coalesce(answer, 0)"
)


def compact_hot(conn: sqlite3.Connection, run: int, upto_ns: int, *, limit: int = 0) -> int:
    """Move the rows of ``run`` in ``probes`` up to ``upto_ns`` (inclusive)
    into blocks, oldest first, at most ``limit`` (default: eight blocks'
    worth) per call; returns the number of rows moved."""
    limit = limit or 8 * blocks.BLOCK_ROWS
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            f"SELECT {_HOT_COLUMNS} FROM probes WHERE run=? AND wall_ns <= ?"
            " ORDER BY wall_ns LIMIT ?",
            (run, upto_ns, limit),
        ).fetchall()
        if rows:
            rowid, _run, series, wall, mono, outcome, latency, answer = _hot_arrays(rows)
            insert_blocks(
                conn,
                run,
                series=series,
                wall_ns=wall,
                mono_ns=mono,
                outcome=outcome.astype(np.int8),
                latency_ns=latency,
                answer=answer,
            )
            conn.executemany("DELETE FROM probes WHERE rowid=?", ((int(r),) for r in rowid))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


# -- aggregates -------------------------------------------------------------------


def minute_rows(
    run: _I64, series: _I64, wall_ns: _I64, outcome: _I64, latency_ns: _I64
) -> list[tuple[int, ...]]:
    """Rows of ``probe_minutes`` (run, series, minute, outcome, attempts,
    answered, latency sum, latency max) for these attempts."""
    if wall_ns.size == 0:
        return []
    minute = wall_ns - wall_ns % MINUTE_NS
    order = np.lexsort((outcome, minute, series, run))
    keys = np.stack((run[order], series[order], minute[order], outcome[order]))
    change = np.any(keys[:, 1:] != keys[:, :-1], axis=0)
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    lat = latency_ns[order]
    answered = lat >= 0
    attempts = np.diff(np.concatenate((starts, [wall_ns.size])))
    n_answered = np.add.reduceat(answered.astype(np.int64), starts)
    lat_sum = np.add.reduceat(np.where(answered, lat, 0), starts)
    lat_max = np.maximum.reduceat(np.where(answered, lat, 0), starts)
    k = keys[:, starts]
    return list(
        zip(
            *(a.tolist() for a in (k[0], k[1], k[2], k[3], attempts, n_answered, lat_sum, lat_max)),
            strict=True,
        )
    )


_UPSERT_MINUTES = (
    "INSERT INTO probe_minutes VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run, series, minute_ns, outcome) DO UPDATE SET"
    " attempts = attempts + excluded.attempts, answered = answered + excluded.answered,"
    " latency_sum_ns = latency_sum_ns + excluded.latency_sum_ns,"
    " latency_max_ns = max(latency_max_ns, excluded.latency_max_ns)"
)


def record_drop(
    conn: sqlite3.Connection,
    what: str,
    *,
    since_ns: int,
    until_ns: int,
    rows: int,
    reason: str,
    now_ns: int,
) -> None:
    """Note a removal, merged into the latest record when it is of the same
    kind and reason (one row per episode of trimming, not per step)."""
    last = conn.execute(
        "SELECT id, what, reason, since_ns, until_ns FROM dropped ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is not None and last[1] == what and last[2] == reason:
        conn.execute(
            "UPDATE dropped SET at_ns=?, since_ns=?, until_ns=?, rows=rows+? WHERE id=?",
            (now_ns, min(last[3], since_ns), max(last[4], until_ns), rows, last[0]),
        )
    else:
        conn.execute(
            "INSERT INTO dropped (at_ns, what, since_ns, until_ns, rows, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (now_ns, what, since_ns, until_ns, rows, reason),
        )


def aggregate_before(
    conn: sqlite3.Connection,
    before_ns: int,
    reason: str,
    now_ns: int,
    *,
    max_blocks: int = 64,
) -> int:
    """Replace raw attempts older than ``before_ns`` by per-minute aggregates
    (a block that straddles the limit is split; its newer part stays raw), at
    most ``max_blocks`` blocks per call; returns the attempts aggregated."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        hot = conn.execute(
            f"SELECT {_HOT_COLUMNS} FROM probes WHERE wall_ns < ? LIMIT ?",
            (before_ns, max_blocks * blocks.BLOCK_ROWS),
        ).fetchall()
        found = conn.execute(
            "SELECT id, run, t_end, data FROM probe_blocks WHERE t_start < ?"
            " ORDER BY t_start LIMIT ?",
            (before_ns, max_blocks),
        ).fetchall()
        parts: list[tuple[_I64, ...]] = []
        if hot:
            rowid, run, series, wall, _mono, outcome, latency, _answer = _hot_arrays(hot)
            parts.append((run, series, wall, outcome, latency))
            conn.executemany("DELETE FROM probes WHERE rowid=?", ((int(r),) for r in rowid))
        for bid, run_id, t_end, blob in found:
            b = blocks.decode(blob)
            old = b.wall_ns < before_ns
            if t_end >= before_ns:  # keep the newer part as a block of its own
                new = ~old
                insert_blocks(
                    conn,
                    run_id,
                    series=b.series[new],
                    wall_ns=b.wall_ns[new],
                    mono_ns=b.mono_ns[new],
                    outcome=b.outcome[new],
                    latency_ns=b.latency_ns[new],
                    answer=b.answer[new],
                )
            n = int(old.sum())
            parts.append(
                (
                    np.full(n, run_id, dtype=np.int64),
                    b.series[old],
                    b.wall_ns[old],
                    b.outcome[old].astype(np.int64),
                    b.latency_ns[old],
                )
            )
            conn.execute("DELETE FROM probe_blocks WHERE id=?", (bid,))
        total = 0
        if parts:
            columns = (np.concatenate(c) for c in zip(*parts, strict=True))
            run, series, wall, outcome, latency = columns
            total = int(wall.size)
            if total:
                conn.executemany(_UPSERT_MINUTES, minute_rows(run, series, wall, outcome, latency))
                record_drop(
                    conn,
                    "raw probes",
                    since_ns=int(wall.min()),
                    until_ns=int(wall.max()),
                    rows=total,
                    reason=reason,
                    now_ns=now_ns,
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return total


def drop_before(conn: sqlite3.Connection, before_ns: int, reason: str, now_ns: int) -> int:
    """Remove the aggregates of minutes that start before ``before_ns`` and
    the events before it (facts stay: they are few and describe the host);
    returns the rows removed."""
    removed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for what, table, column in (
            ("minutes", "probe_minutes", "minute_ns"),
            ("events", "events", "wall_ns"),
        ):
            n, lo, hi = conn.execute(
                f"SELECT count(*), min({column}), max({column}) FROM {table} WHERE {column} < ?",
                (before_ns,),
            ).fetchone()
            if n:
                conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (before_ns,))
                record_drop(
                    conn, what, since_ns=lo, until_ns=hi, rows=n, reason=reason, now_ns=now_ns
                )
                removed += n
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed


# -- the size cap -------------------------------------------------------------------


def _give_back(conn: sqlite3.Connection) -> bool:
    """Return free pages to the file system and cut the log; False when a
    reader holds the log (then nothing more should be written for now)."""
    conn.execute("PRAGMA incremental_vacuum")
    busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


def _oldest(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The oldest wall time of the aggregates and events, and the newest of anything."""
    lo = conn.execute(
        "SELECT min(t) FROM (SELECT min(minute_ns) AS t FROM probe_minutes"
        " UNION ALL SELECT min(wall_ns) FROM events)"
    ).fetchone()[0]
    hi = conn.execute(
        "SELECT max(t) FROM (SELECT max(minute_ns) AS t FROM probe_minutes"
        " UNION ALL SELECT max(wall_ns) FROM events UNION ALL SELECT max(t_end) FROM probe_blocks"
        " UNION ALL SELECT max(wall_ns) FROM probes)"
    ).fetchone()[0]
    return lo, hi


def enforce_cap(conn: sqlite3.Connection, path: Path, max_bytes: int, now_ns: int) -> bool:
    """Bring the store under :data:`LOW_WATER` of ``max_bytes`` if it reached
    :data:`HIGH_WATER`: oldest raw attempts to aggregates first, then the
    oldest aggregates and events, in steps of at most :data:`STEP` of the
    cap. Returns whether it had to act."""
    if store_bytes(path) < HIGH_WATER * max_bytes:
        return False
    reason = f"max-store-size {format_size(max_bytes)}"
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    if not _give_back(conn):
        return True
    for _ in range(_MAX_STEPS):
        if store_bytes(path) <= LOW_WATER * max_bytes:
            break
        step_bytes = max(page, int(STEP * max_bytes))
        # the oldest blocks whose data add up to a step
        ends = conn.execute(
            "SELECT t_end, length(data) FROM probe_blocks ORDER BY t_start LIMIT 4096"
        ).fetchall()
        if len(ends) > 1:
            acc, cut = 0, ends[0][0]
            for t_end, size in ends[:-1]:  # the newest block stays raw
                acc += size
                cut = t_end
                if acc >= step_bytes:
                    break
            aggregate_before(conn, cut + 1, reason, now_ns)
        else:
            lo, hi = _oldest(conn)
            if lo is None or hi is None or lo >= hi:
                break  # nothing older left to give up
            cut = lo + max(MINUTE_NS, int((hi - lo) * STEP))
            if not drop_before(conn, min(cut, hi), reason, now_ns):
                break
        if not _give_back(conn):
            break
    return True
