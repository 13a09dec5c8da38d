"""SQLite implementation of the store."""

from __future__ import annotations

import itertools
import json
import logging
import os
import platform
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netsleuth.errors import StoreError
from netsleuth.lifecycle import Closing
from netsleuth.model import (
    EventDetail,
    EventKind,
    NetEvent,
    Outcome,
    ProbeResult,
    RawDetail,
    detail_from_json,
)
from netsleuth.store import blocks, reading, retention

__all__ = [
    "OPTIONAL_COLUMNS",
    "SCHEMA_VERSION",
    "Dropped",
    "MinuteColumns",
    "ProbeBatch",
    "ProbeColumns",
    "RunInfo",
    "Series",
    "Store",
    "StoreWriter",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""1: probes as rows only. 2: adds ``probe_blocks`` (columns of attempts,
see :mod:`netsleuth.store.blocks`), ``probe_minutes`` (per-minute aggregates
beyond the retention window) and ``dropped`` (what retention and the size cap
removed). A store of schema 1 gains the new tables when opened; its rows are
read as they are and compacted into blocks by the next writer."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    host TEXT NOT NULL,
    kernel TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    targets TEXT NOT NULL DEFAULT '[]',
    args TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    probe TEXT NOT NULL,
    server TEXT NOT NULL,
    UNIQUE (target, probe, server)
);
CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS probes (
    run INTEGER NOT NULL,
    series INTEGER NOT NULL,
    wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    outcome INTEGER NOT NULL,
    latency_ns INTEGER,
    answer INTEGER
);
CREATE INDEX IF NOT EXISTS probes_run_time ON probes (run, wall_ns);
CREATE TABLE IF NOT EXISTS probe_blocks (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    t_start INTEGER NOT NULL,
    t_end INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS probe_blocks_time ON probe_blocks (t_end, t_start);
CREATE TABLE IF NOT EXISTS probe_minutes (
    run INTEGER NOT NULL,
    series INTEGER NOT NULL,
    minute_ns INTEGER NOT NULL,
    outcome INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    latency_sum_ns INTEGER NOT NULL,
    latency_max_ns INTEGER NOT NULL,
    PRIMARY KEY (run, series, minute_ns, outcome)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS probe_minutes_time ON probe_minutes (minute_ns);
CREATE TABLE IF NOT EXISTS dropped (
    id INTEGER PRIMARY KEY,
    at_ns INTEGER NOT NULL,
    what TEXT NOT NULL,
    since_ns INTEGER NOT NULL,
    until_ns INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    netns TEXT NOT NULL,
    kind TEXT NOT NULL,
    ifname TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_time ON events (run, wall_ns);
CREATE TABLE IF NOT EXISTS facts (
    run INTEGER NOT NULL,
    wall_ns INTEGER NOT NULL,
    netns TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another one's write lock."""
WAL_LIMIT_BYTES = 4 << 20
"""The write-ahead log is cut back to this size after each checkpoint."""


def default_store_path() -> Path:
    """``$NETSLEUTH_STORE``, else /var/lib/netsleuth/netsleuth.sqlite as root,
    else ~/.local/share/netsleuth/netsleuth.sqlite."""
    env = os.environ.get("NETSLEUTH_STORE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/netsleuth/netsleuth.sqlite")
    return Path.home() / ".local/share/netsleuth/netsleuth.sqlite"


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    if not create and not path.exists():
        raise StoreError(
            f"store {path} does not exist; record one with `netsleuth watch --store {path}`"
        )
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of store {path}: {exc.strerror}"
            ) from None
    try:
        conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        version = _schema_version(conn)
        if version is None and create:
            # only before the first table: lets the size cap give pages back
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        if version is None:
            if not create:
                raise StoreError(f"{path} is not a netsleuth store (no schema); check the path")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path} was written by a newer netsleuth (schema {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade netsleuth or use another --store"
            )
        elif version < SCHEMA_VERSION:
            conn.executescript(_SCHEMA)  # adds the new tables; old rows stay as they are
            conn.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )
            log.info("store %s: schema %d upgraded to %d", path, version, SCHEMA_VERSION)
        return conn
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"store {path} is corrupt or not a SQLite file ({exc}); "
            "move it aside and record into a new --store"
        ) from None


def _schema_version(conn: sqlite3.Connection) -> int | None:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
    ).fetchone()
    if not has_meta:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise sqlite3.DatabaseError("tables present but no netsleuth meta table")
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise sqlite3.DatabaseError("meta table without schema_version")
    return int(row[0])


def _detail(kind: str, text: str) -> tuple[EventKind, EventDetail]:
    """The kind and detail of an event row; a detail that is not JSON or does
    not fit its kind reads as a :class:`~netsleuth.model.RawDetail`."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = None
    event_kind = EventKind(kind)
    return event_kind, detail_from_json(event_kind, data)


def _event(
    row: Sequence[Any], seen: dict[tuple[str, str], tuple[EventKind, EventDetail]]
) -> NetEvent:
    """One row of ``events``. Details repeat (the same MAC change, the same
    stale entry, over and over): ``seen`` keeps those already parsed, shared
    between the events as they are immutable (all but a ``RawDetail``, which
    holds the dict read and is parsed again each time)."""
    wall_ns, mono_ns, netns, kind, ifname, subject, text = row
    key = (kind, text)
    parsed = seen.get(key)
    if parsed is None:
        parsed = _detail(kind, text)
        if not isinstance(parsed[1], RawDetail):
            seen[key] = parsed
    return NetEvent(wall_ns, mono_ns, netns, parsed[0], ifname, subject, parsed[1])


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    started_ns: int
    ended_ns: int | None
    host: str
    kernel: str
    label: str
    targets: list[str]
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Series:
    """One probe stream: a probe from a target, to one server."""

    id: int
    target: str
    probe: str
    server: str


OPTIONAL_COLUMNS = ("mono_ns", "latency_ns")
"""The columns of :class:`ProbeColumns` a reader may leave out (``columns=``)."""


@dataclass(frozen=True, slots=True)
class ProbeColumns:
    """Probe attempts as parallel numpy arrays, sorted by ``wall_ns``.

    ``latency_ns`` is -1 where no answer came back. ``outcome`` holds
    :class:`~netsleuth.model.Outcome` values. ``run`` and ``series`` have
    the narrowest signed type that holds the store's ids. ``mono_ns`` and
    ``latency_ns`` are empty when they were not read (see
    :meth:`Store.probe_columns`).
    """

    run: npt.NDArray[np.signedinteger[Any]]
    series: npt.NDArray[np.signedinteger[Any]]
    wall_ns: npt.NDArray[np.int64]
    mono_ns: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int8]
    latency_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.wall_ns)

    def take(self, mask: npt.NDArray[np.bool_]) -> ProbeColumns:
        """The attempts where ``mask`` is true."""
        n = len(self)

        def pick(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return a[mask] if a.size == n else a  # a column not read stays empty

        return ProbeColumns(
            self.run[mask],
            self.series[mask],
            self.wall_ns[mask],
            pick(self.mono_ns),
            self.outcome[mask],
            pick(self.latency_ns),
        )

    @property
    def failed(self) -> npt.NDArray[np.bool_]:
        """Attempts that failed (not OK, NXDOMAIN or gone)."""
        return reading.failed_of(self.outcome)

    @property
    def gone(self) -> npt.NDArray[np.bool_]:
        """Attempts recorded while the target was gone (not failures)."""
        gone: npt.NDArray[np.bool_] = self.outcome == Outcome.TARGET_GONE
        return gone


@dataclass(frozen=True, slots=True)
class ProbeBatch:
    """Probe attempts as columns, for writers that hold them as arrays (the
    synthetic stores, replays): ``series`` and ``answer`` index ``keys`` and
    ``answers`` (``answer`` -1: none), ``latency_ns`` -1: no answer."""

    keys: tuple[tuple[str, str, str], ...]
    """(target, probe, server) of each series index."""
    series: npt.NDArray[np.int64]
    wall_ns: npt.NDArray[np.int64]
    mono_ns: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int8]
    latency_ns: npt.NDArray[np.int64]
    answer: npt.NDArray[np.int64]
    answers: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.wall_ns)


MINUTE_NS = 60_000_000_000


@dataclass(frozen=True, slots=True)
class MinuteColumns:
    """Per-minute aggregates of attempts beyond the retention window: one row
    per (run, series, minute, outcome); ``minute_ns`` is the minute's start."""

    run: npt.NDArray[np.int64]
    series: npt.NDArray[np.int64]
    minute_ns: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int64]
    attempts: npt.NDArray[np.int64]
    answered: npt.NDArray[np.int64]
    latency_sum_ns: npt.NDArray[np.int64]
    latency_max_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.minute_ns)


@dataclass(frozen=True, slots=True)
class Dropped:
    """One removal by retention or the size cap: ``what`` (``raw probes``:
    attempts kept only as per-minute aggregates; ``minutes``, ``events``:
    removed) between ``since_ns`` and ``until_ns``, and why (``reason``)."""

    at_ns: int
    what: str
    since_ns: int
    until_ns: int
    rows: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Loaded:
    cols: ProbeColumns
    sourced: reading.Sourced
    answer: npt.NDArray[np.int64] | None
    """Every attempt's answer id (0: none); read by full loads only."""

    @property
    def full(self) -> bool:
        return self.answer is not None


def _id_type(conn: sqlite3.Connection, table: str) -> type[np.signedinteger[Any]]:
    """The narrowest signed type that holds every id of ``table``."""
    (top,) = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
    for dtype in (np.int8, np.int16, np.int32):
        if int(top) <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _read_columns(
    conn: sqlite3.Connection,
    runs: Sequence[int] | None,
    since_ns: int | None,
    until_ns: int | None,
    *,
    full: bool,
) -> _Loaded:
    """Attempts from the blocks that overlap the range (trimmed at its edges)
    and from the rows not yet compacted, sorted by wall time. Call inside a
    transaction: the two tables must be read in one snapshot.

    Not ``full``: only run, series, wall time and outcome are decoded for
    every attempt (in narrow types); latency, monotonic time and answer only
    for the failed attempts with an answer id, in the blocks that have any."""
    sel = reading.select(conn, runs, since_ns, until_ns)
    total = sel.rows
    if full:
        out = blocks.empty(total)
        run: npt.NDArray[np.signedinteger[Any]] = np.empty(total, dtype=np.int64)
    else:
        empty = np.empty(0, dtype=np.int64)
        out = blocks.Block(
            np.empty(total, dtype=_id_type(conn, "series")),
            np.empty(total, dtype=np.int64),
            empty,
            np.empty(total, dtype=np.int8),
            empty,
            empty,
        )
        run = np.empty(total, dtype=_id_type(conn, "runs"))
    sourced = reading.SourcedParts()
    pos = 0
    for piece in reading.pieces(sel):
        end = pos + piece.rows
        if full and piece.blob is not None:
            blocks.decode_into(piece.blob, out, pos)
        elif full:
            for f in blocks.Block.__slots__:
                getattr(out, f)[pos:end] = getattr(piece.block, f)
        else:
            wall = piece.wall_ns(out.wall_ns[pos:end])
            out.series[pos:end] = piece.series()
            outcome = piece.outcome()
            out.outcome[pos:end] = outcome
            sourced.add(piece, wall, outcome)
        run[pos:end] = piece.run
        pos = end
    assert pos == total
    wall_all = out.wall_ns
    if total > 1 and not bool(np.all(wall_all[1:] >= wall_all[:-1])):
        # runs written at the same time, or late rows: a stable sort keeps
        # the order of equal times as written
        order = np.argsort(wall_all, kind="stable")
        out = blocks.Block(
            *(a[order] if a.size else a for a in (getattr(out, f) for f in blocks.Block.__slots__))
        )
        run = run[order]
    cols = ProbeColumns(
        run=run,
        series=out.series,
        wall_ns=out.wall_ns,
        mono_ns=out.mono_ns,
        outcome=out.outcome,
        latency_ns=out.latency_ns,
    )
    if not full:
        return _Loaded(cols, sourced.done(), None)
    rows = np.flatnonzero(cols.failed & (out.answer > 0))
    found = reading.Sourced(
        cols.wall_ns[rows],
        out.mono_ns[rows],
        cols.series[rows].astype(np.int64),
        cols.outcome[rows].astype(np.int64),
        out.latency_ns[rows],
        out.answer[rows],
    )
    return _Loaded(cols, found, out.answer)


class Store(Closing):
    """Read access to a store (and the run bookkeeping writers need)."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, create=create)
        self._cache: tuple[Any, _Loaded] | None = None
        self._sourced: tuple[Any, reading.Sourced] | None = None

    def close(self) -> None:
        self._cache = self._sourced = None
        self._conn.close()

    # -- runs -------------------------------------------------------------
    def begin_run(self, label: str, targets: Sequence[str], args: dict[str, Any]) -> int:
        uname = platform.uname()
        cur = self._conn.execute(
            "INSERT INTO runs (started_ns, host, kernel, label, targets, args)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time_ns(),
                uname.node,
                uname.release,
                label,
                json.dumps(list(targets)),
                json.dumps(args, default=str),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def end_run(self, run_id: int) -> None:
        self._conn.execute("UPDATE runs SET ended_ns=? WHERE id=?", (time.time_ns(), run_id))

    def runs(self) -> list[RunInfo]:
        rows = self._conn.execute(
            "SELECT id, started_ns, ended_ns, host, kernel, label, targets, args"
            " FROM runs ORDER BY id"
        ).fetchall()
        return [
            RunInfo(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]))
            for r in rows
        ]

    # -- reading ----------------------------------------------------------
    def series(self) -> dict[int, Series]:
        return {
            r[0]: Series(*r)
            for r in self._conn.execute("SELECT id, target, probe, server FROM series")
        }

    def _load(
        self,
        runs: Sequence[int] | None,
        since_ns: int | None,
        until_ns: int | None,
        *,
        full: bool,
    ) -> _Loaded:
        """The attempts of the selection, read in one snapshot; the last
        selection is kept until the store changes (``probe_columns`` and
        ``sourced_failures`` of one report read once). A full read serves a
        narrow one too."""
        key = self._key(runs, since_ns, until_ns)
        cached = self._cache
        if cached is not None and cached[0] == key and (cached[1].full or not full):
            return cached[1]
        self._cache = None
        self._conn.execute("BEGIN")
        try:
            loaded = _read_columns(self._conn, runs, since_ns, until_ns, full=full)
        finally:
            self._conn.execute("COMMIT")
        self._cache = (key, loaded)
        self._sourced = (key, loaded.sourced)
        return loaded

    def _key(
        self, runs: Sequence[int] | None, since_ns: int | None, until_ns: int | None
    ) -> tuple[Any, ...]:
        """A selection, and the store's state (it changes with every write)."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        return (tuple(sorted(set(runs))) if runs else None, since_ns, until_ns, version)

    def probe_groups(
        self,
        group_of: Mapping[int, int],
        groups: int,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> reading.ProbeGroups:
        """The attempts of the selection grouped by ``group_of`` (series id ->
        group ``0 ... groups - 1``), each group in time order: what an
        analysis per target needs, read with about a third of the memory of
        :meth:`probe_columns` and without grouping afterwards (see
        :mod:`netsleuth.store.reading`). A later :meth:`sourced_failures` of
        the same selection reads nothing more."""
        key = self._key(runs, since_ns, until_ns)
        parts = reading.SourcedParts()
        (top,) = self._conn.execute("SELECT coalesce(max(id), 0) FROM series").fetchone()
        self._conn.execute("BEGIN")
        try:
            sel = reading.select(self._conn, runs, since_ns, until_ns)
            out = reading.grouped(sel, group_of, groups, series_ids=int(top) + 1, sourced=parts)
        finally:
            self._conn.execute("COMMIT")
        self._sourced = (key, parts.done())
        return out

    def probe_columns(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        columns: Iterable[str] | None = None,
    ) -> ProbeColumns:
        """The raw attempts of ``runs`` (all if None) in ``[since_ns,
        until_ns)``, sorted by wall time. Attempts older than the retention
        window are only in :meth:`minutes`.

        ``columns``: which of :data:`OPTIONAL_COLUMNS` to read (all if None).
        Run, series, wall time and outcome are always there; a column left
        out may come back empty. Leaving both out (``columns=()``, what an
        analysis needs) spares two 8-byte numbers per attempt and most of
        the decoding."""
        wanted = set(OPTIONAL_COLUMNS if columns is None else columns)
        unknown = wanted - set(OPTIONAL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown probe columns: {', '.join(sorted(unknown))}")
        return self._load(runs, since_ns, until_ns, full=bool(wanted)).cols

    def _results(
        self,
        *,
        wall_ns: npt.NDArray[np.int64],
        mono_ns: npt.NDArray[np.int64],
        series_ids: npt.NDArray[np.integer[Any]],
        outcome: npt.NDArray[np.integer[Any]],
        latency_ns: npt.NDArray[np.int64],
        answer: npt.NDArray[np.int64],
    ) -> list[ProbeResult]:
        """Probe results from the columns of some attempts."""
        series = self.series()
        texts = self._answer_texts(np.unique(answer).tolist())
        out = []
        for wall, mono, sid, oc, latency, ans in zip(
            wall_ns.tolist(),
            mono_ns.tolist(),
            series_ids.tolist(),
            outcome.tolist(),
            latency_ns.tolist(),
            answer.tolist(),
            strict=True,
        ):
            s = series[sid]
            out.append(
                ProbeResult(
                    wall,
                    mono,
                    s.target,
                    s.probe,
                    s.server,
                    Outcome(oc),
                    None if latency < 0 else latency,
                    texts.get(ans, ""),
                )
            )
        return out

    def _answer_texts(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        wanted = [int(i) for i in ids if i > 0]
        for k in range(0, len(wanted), 500):
            chunk = wanted[k : k + 500]
            out.update(
                self._conn.execute(
                    f"SELECT id, text FROM answers WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
        return out

    def probes(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[ProbeResult]:
        """Probe attempts as objects (convenient for small selections)."""
        loaded = self._load(runs, since_ns, until_ns, full=True)
        cols, answer = loaded.cols, loaded.answer
        assert answer is not None
        return self._results(
            wall_ns=cols.wall_ns,
            mono_ns=cols.mono_ns,
            series_ids=cols.series,
            outcome=cols.outcome,
            latency_ns=cols.latency_ns,
            answer=answer,
        )

    def sourced_failures(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[ProbeResult]:
        """The failed probe attempts that recorded where they sent from (their
        answer is ``from ADDR:PORT``: a DNS or TCP probe that timed out), for
        linking kernel drops to them (:mod:`netsleuth.drops.link`)."""
        key = self._key(runs, since_ns, until_ns)
        if self._sourced is not None and self._sourced[0] == key:
            cand = self._sourced[1]
        else:
            self._conn.execute("BEGIN")
            try:
                cand = reading.sourced_of(reading.select(self._conn, runs, since_ns, until_ns))
            finally:
                self._conn.execute("COMMIT")
            self._sourced = (key, cand)
        if cand.answer.size == 0:
            return []
        texts = self._answer_texts(np.unique(cand.answer).tolist())
        sourced = np.asarray([i for i, t in texts.items() if t.startswith("from ")], np.int64)
        keep = np.isin(cand.answer, sourced)
        return self._results(
            wall_ns=cand.wall_ns[keep],
            mono_ns=cand.mono_ns[keep],
            series_ids=cand.series[keep],
            outcome=cand.outcome[keep],
            latency_ns=cand.latency_ns[keep],
            answer=cand.answer[keep],
        )

    def minutes(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> MinuteColumns:
        """The per-minute aggregates (of attempts older than the retention
        window) of minutes that start in ``[since_ns, until_ns)``."""
        where, params = reading.where(runs, None, None)
        clauses = [where[len(" WHERE ") :]] if where else []
        if since_ns is not None:
            clauses.append("minute_ns >= ?")
            params.append(since_ns - since_ns % MINUTE_NS)
        if until_ns is not None:
            clauses.append("minute_ns < ?")
            params.append(until_ns)
        rows = self._conn.execute(
            "SELECT run, series, minute_ns, outcome, attempts, answered, latency_sum_ns,"
            " latency_max_ns FROM probe_minutes"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + " ORDER BY minute_ns, run, series, outcome",
            params,
        ).fetchall()
        data = np.array(rows, dtype=np.int64).reshape(-1, 8)
        return MinuteColumns(*(data[:, k].copy() for k in range(8)))

    def dropped(self) -> list[Dropped]:
        """What retention and the size cap removed, oldest first."""
        return [
            Dropped(*r)
            for r in self._conn.execute(
                "SELECT at_ns, what, since_ns, until_ns, rows, reason FROM dropped ORDER BY id"
            )
        ]

    def events(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[NetEvent]:
        where, params = reading.where(runs, since_ns, until_ns)
        rows = self._conn.execute(
            "SELECT wall_ns, mono_ns, netns, kind, ifname, subject, detail"
            f" FROM events{where} ORDER BY wall_ns, id",
            params,
        ).fetchall()
        seen: dict[tuple[str, str], tuple[EventKind, EventDetail]] = {}
        return [_event(r, seen) for r in rows]

    def facts(self, runs: Sequence[int] | None = None) -> list[dict[str, Any]]:
        where, params = reading.where(runs, None, None)
        rows = self._conn.execute(
            f"SELECT run, wall_ns, netns, kind, subject, data FROM facts{where} ORDER BY wall_ns",
            params,
        ).fetchall()
        return [
            {
                "run": r[0],
                "wall_ns": r[1],
                "netns": r[2],
                "kind": r[3],
                "subject": r[4],
                "data": json.loads(r[5]),
            }
            for r in rows
        ]

    def add_fact(self, run_id: int, netns: str, kind: str, subject: str, data: Any) -> None:
        self._conn.execute(
            "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, time.time_ns(), netns, kind, subject, json.dumps(data, default=str)),
        )


_STOP = object()

COMPACT_INTERVAL_S = 5.0
"""How often the writer looks whether a block's worth of rows has gathered."""
HOT_MAX_AGE_NS = 600_000_000_000
"""Rows of a slow run are compacted once they span this long (10 minutes)."""
LATE_NS = 2_000_000_000
"""Rows this close to a run's newest are left for late arrivals of other targets."""
RETAIN_INTERVAL_S = 60.0
"""How often the writer aggregates what left the retention window."""
CAP_INTERVAL_S = 1.0
"""How often (at most) the writer measures the store against its size cap..."""
CAP_WRITE_SHARE = 0.02
"""...or after writing this share of the cap, whichever comes first."""


class StoreWriter:
    """Batched writer owned by one thread. ``put_*`` never block on SQLite.

    Events are committed as soon as the writer wakes; probe results at least
    every ``flush_interval`` seconds, as rows of ``probes`` that readers see
    at once; every :data:`COMPACT_INTERVAL_S` the thread moves a block's
    worth of them into a column block. With ``retain_ns`` it replaces
    attempts older than that by per-minute aggregates; with ``max_bytes`` it
    keeps database and log under that size (:mod:`netsleuth.store.retention`).
    :meth:`close` flushes and joins.
    """

    def __init__(
        self,
        path: str | Path,
        run_id: int,
        flush_interval: float = 0.2,
        *,
        retain_ns: int | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.retain_ns = retain_ns
        self.max_bytes = max_bytes
        self._clock = clock
        self._conn = _connect(self.path, create=True)
        if max_bytes is not None:
            # the log must stay a small part of the cap: checkpoint and cut it
            # back after a few percent of it
            page = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            limit = max(16 * page, min(WAL_LIMIT_BYTES, int(max_bytes * retention.STEP)))
            self._conn.execute(f"PRAGMA journal_size_limit={limit}")
            self._conn.execute(f"PRAGMA wal_autocheckpoint={max(16, limit // page)}")
        self._series: dict[tuple[str, str, str], int] = {}
        self._answers: dict[str, int] = {}
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._error: BaseException | None = None
        # runs that ended with rows not yet compacted (a store of schema 1, a
        # writer killed before its last compaction): compacted in steps
        self._leftover = [
            r
            for (r,) in self._conn.execute(
                "SELECT id FROM runs WHERE ended_ns IS NOT NULL AND id != ?"
                " AND EXISTS (SELECT 1 FROM probes WHERE probes.run = runs.id)",
                (run_id,),
            )
        ]
        self._written = 0
        self._last = {"compact": 0.0, "retain": 0.0, "cap": 0.0}
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    # -- producer side ------------------------------------------------------
    def put_probes(self, results: Iterable[ProbeResult]) -> None:
        self._queue.put(list(results))

    def put_batch(self, batch: ProbeBatch) -> None:
        """Attempts as columns: written straight into blocks when sorted by
        wall time (how large synthetic stores are built), else as rows."""
        self._queue.put(batch)

    def put_event(self, event: NetEvent) -> None:
        self._queue.put(event)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._conn.close()
        if self._error is not None:
            raise StoreError(f"writing store {self.path} failed: {self._error}")

    # -- writer thread ------------------------------------------------------
    def _series_id(self, target: str, probe: str, server: str) -> int:
        key = (target, probe, server)
        sid = self._series.get(key)
        if sid is None:
            self._conn.execute(
                "INSERT OR IGNORE INTO series (target, probe, server) VALUES (?, ?, ?)", key
            )
            sid = self._conn.execute(
                "SELECT id FROM series WHERE target=? AND probe=? AND server=?", key
            ).fetchone()[0]
            self._series[key] = sid
        return sid

    def _answer_id(self, text: str) -> int | None:
        if not text:
            return None
        aid = self._answers.get(text)
        if aid is None:
            self._conn.execute("INSERT OR IGNORE INTO answers (text) VALUES (?)", (text,))
            aid = self._conn.execute("SELECT id FROM answers WHERE text=?", (text,)).fetchone()[0]
            self._answers[text] = aid
        return aid

    def _loop(self) -> None:
        pending: list[ProbeResult] = []
        batches: list[ProbeBatch] = []
        events: list[NetEvent] = []
        last_flush = time.monotonic()
        stopping = False
        while not stopping:
            timeout = max(0.0, self.flush_interval - (time.monotonic() - last_flush))
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, NetEvent):
                    events.append(item)
                elif isinstance(item, ProbeBatch):
                    batches.append(item)
                else:
                    pending.extend(item)  # type: ignore[arg-type]
                if len(batches) >= 8:
                    break  # write large batches as they come
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            due = time.monotonic() - last_flush >= self.flush_interval
            try:
                if events or batches or (pending and (due or stopping or len(pending) >= 50_000)):
                    self._flush(pending, events, batches)
                    pending, events, batches = [], [], []
                    last_flush = time.monotonic()
                self._maintain(final=stopping)
            except sqlite3.Error as exc:
                self._error = exc
                return

    def _flush(
        self, probes: list[ProbeResult], events: list[NetEvent], batches: list[ProbeBatch]
    ) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            self._insert(probes, events, batches)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _insert(
        self, probes: list[ProbeResult], events: list[NetEvent], batches: list[ProbeBatch]
    ) -> None:
        conn = self._conn
        run = self.run_id
        if probes:
            conn.executemany(
                "INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run,
                        self._series_id(p.target, p.probe, p.server),
                        p.wall_ns,
                        p.mono_ns,
                        int(p.outcome),
                        p.latency_ns,
                        self._answer_id(p.answer),
                    )
                    for p in probes
                ],
            )
            self._written += 64 * len(probes)
        for batch in batches:
            self._insert_batch(batch)
        if events:
            conn.executemany(
                "INSERT INTO events (run, wall_ns, mono_ns, netns, kind, ifname, subject, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run,
                        e.wall_ns,
                        e.mono_ns,
                        e.netns,
                        str(e.kind),
                        e.ifname,
                        e.subject,
                        json.dumps(e.detail.to_json(), default=str),
                    )
                    for e in events
                ],
            )

    def _insert_batch(self, batch: ProbeBatch) -> None:
        if len(batch) == 0:
            return
        sids = np.asarray([self._series_id(*k) for k in batch.keys], dtype=np.int64)
        aids = np.asarray([0] + [self._answer_id(t) or 0 for t in batch.answers], dtype=np.int64)
        series = sids[batch.series]
        answer = aids[batch.answer + 1]
        latency = np.asarray(batch.latency_ns, dtype=np.int64)
        wall = np.asarray(batch.wall_ns, dtype=np.int64)
        if len(batch) >= 256 and bool(np.all(wall[1:] >= wall[:-1])):
            self._written += retention.insert_blocks(
                self._conn,
                self.run_id,
                series=series,
                wall_ns=wall,
                mono_ns=np.asarray(batch.mono_ns, dtype=np.int64),
                outcome=np.asarray(batch.outcome, dtype=np.int8),
                latency_ns=latency,
                answer=answer,
            )
            return
        self._conn.executemany(
            "INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?)",
            zip(
                itertools.repeat(self.run_id),
                series.tolist(),
                wall.tolist(),
                np.asarray(batch.mono_ns).tolist(),
                np.asarray(batch.outcome).tolist(),
                [None if v < 0 else v for v in latency.tolist()],
                [None if v == 0 else v for v in answer.tolist()],
                strict=True,
            ),
        )
        self._written += 64 * len(batch)

    def _due(self, what: str, interval: float, *, final: bool) -> bool:
        now = time.monotonic()
        if final or now - self._last[what] >= interval:
            self._last[what] = now
            return True
        return False

    def _maintain(self, *, final: bool) -> None:
        """Compaction, retention and the size cap, each on its own schedule."""
        conn = self._conn
        if self._due("compact", COMPACT_INTERVAL_S, final=final) and not final:
            n, lo, hi = conn.execute(
                "SELECT count(*), min(wall_ns), max(wall_ns) FROM probes WHERE run=?",
                (self.run_id,),
            ).fetchone()
            if n >= blocks.BLOCK_ROWS or (n and hi - lo >= HOT_MAX_AGE_NS):
                retention.compact_hot(conn, self.run_id, hi - LATE_NS)
            if self._leftover and not retention.compact_hot(conn, self._leftover[0], 2**63 - 1):
                self._leftover.pop(0)
        if self.retain_ns is not None and self._due("retain", RETAIN_INTERVAL_S, final=final):
            before = self._clock() - self.retain_ns
            reason = f"retain {retention.format_duration(self.retain_ns)}"
            while retention.aggregate_before(conn, before, reason, self._clock()):
                pass
        if self.max_bytes is not None:
            cap_due = self._written >= CAP_WRITE_SHARE * self.max_bytes
            if self._due("cap", 0.0 if cap_due else CAP_INTERVAL_S, final=final):
                self._written = 0
                retention.enforce_cap(conn, self.path, self.max_bytes, self._clock())
