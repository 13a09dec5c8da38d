"""SQLite implementation of the store."""

from __future__ import annotations

import json
import os
import platform
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netsleuth.errors import StoreError
from netsleuth.lifecycle import Closing
from netsleuth.model import EventKind, NetEvent, Outcome, ProbeResult, detail_from_json

__all__ = ["SCHEMA_VERSION", "ProbeColumns", "RunInfo", "Series", "Store", "StoreWriter"]

SCHEMA_VERSION = 1

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
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = _schema_version(conn)
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


def _event(row: Sequence[Any]) -> NetEvent:
    """One row of ``events``; a detail that is not JSON or does not fit its
    kind reads as a :class:`~netsleuth.model.RawDetail`."""
    wall_ns, mono_ns, netns, kind, ifname, subject, text = row
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = None
    event_kind = EventKind(kind)
    detail = detail_from_json(event_kind, data)
    return NetEvent(wall_ns, mono_ns, netns, event_kind, ifname, subject, detail)


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


@dataclass(frozen=True, slots=True)
class ProbeColumns:
    """Probe attempts as parallel numpy arrays, sorted by ``wall_ns``.

    ``latency_ns`` is -1 where no answer came back. ``outcome`` holds
    :class:`~netsleuth.model.Outcome` values.
    """

    run: npt.NDArray[np.int64]
    series: npt.NDArray[np.int64]
    wall_ns: npt.NDArray[np.int64]
    mono_ns: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int8]
    latency_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.wall_ns)

    def take(self, mask: npt.NDArray[np.bool_]) -> ProbeColumns:
        """The attempts where ``mask`` is true."""
        return ProbeColumns(
            self.run[mask],
            self.series[mask],
            self.wall_ns[mask],
            self.mono_ns[mask],
            self.outcome[mask],
            self.latency_ns[mask],
        )

    @property
    def failed(self) -> npt.NDArray[np.bool_]:
        return ~np.isin(self.outcome, (Outcome.OK, Outcome.NXDOMAIN, Outcome.TARGET_GONE))

    @property
    def gone(self) -> npt.NDArray[np.bool_]:
        """Attempts recorded while the target was gone (not failures)."""
        gone: npt.NDArray[np.bool_] = self.outcome == Outcome.TARGET_GONE
        return gone


class Store(Closing):
    """Read access to a store (and the run bookkeeping writers need)."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, create=create)

    def close(self) -> None:
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

    @staticmethod
    def _where(
        runs: Sequence[int] | None, since_ns: int | None, until_ns: int | None
    ) -> tuple[str, list[int]]:
        clauses: list[str] = []
        params: list[int] = []
        if runs:
            clauses.append(f"run IN ({','.join('?' * len(runs))})")
            params.extend(runs)
        if since_ns is not None:
            clauses.append("wall_ns >= ?")
            params.append(since_ns)
        if until_ns is not None:
            clauses.append("wall_ns < ?")
            params.append(until_ns)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def probe_columns(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> ProbeColumns:
        where, params = self._where(runs, since_ns, until_ns)
        cur = self._conn.execute(
            "SELECT run, series, wall_ns, mono_ns, outcome, coalesce(latency_ns, -1)"
            f" FROM probes{where} ORDER BY wall_ns",
            params,
        )
        chunks = []
        while rows := cur.fetchmany(200_000):
            chunks.append(np.array(rows, dtype=np.int64))
        data = np.concatenate(chunks) if chunks else np.empty((0, 6), dtype=np.int64)
        return ProbeColumns(
            run=data[:, 0].copy(),
            series=data[:, 1].copy(),
            wall_ns=data[:, 2].copy(),
            mono_ns=data[:, 3].copy(),
            outcome=data[:, 4].astype(np.int8),
            latency_ns=data[:, 5].copy(),
        )

    def probes(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[ProbeResult]:
        """Probe attempts as objects (convenient for small selections)."""
        where, params = self._where(runs, since_ns, until_ns)
        where = where.replace("run", "p.run").replace("wall_ns", "p.wall_ns")
        rows = self._conn.execute(
            "SELECT p.wall_ns, p.mono_ns, s.target, s.probe, s.server, p.outcome,"
            " p.latency_ns, coalesce(a.text, '') FROM probes p"
            " JOIN series s ON s.id = p.series LEFT JOIN answers a ON a.id = p.answer"
            f"{where} ORDER BY p.wall_ns",
            params,
        ).fetchall()
        return [ProbeResult(r[0], r[1], r[2], r[3], r[4], Outcome(r[5]), r[6], r[7]) for r in rows]

    def sourced_failures(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[ProbeResult]:
        """The failed probe attempts that recorded where they sent from (their
        answer is ``from ADDR:PORT``: a DNS or TCP probe that timed out), for
        linking kernel drops to them (:mod:`netsleuth.drops.link`)."""
        where, params = self._where(runs, since_ns, until_ns)
        where = where.replace("run", "p.run").replace("wall_ns", "p.wall_ns")
        ok = (int(Outcome.OK), int(Outcome.NXDOMAIN), int(Outcome.TARGET_GONE))
        rows = self._conn.execute(
            "SELECT p.wall_ns, p.mono_ns, s.target, s.probe, s.server, p.outcome,"
            " p.latency_ns, a.text FROM probes p"
            " JOIN series s ON s.id = p.series JOIN answers a ON a.id = p.answer"
            f"{where}{' AND' if where else ' WHERE'} p.outcome NOT IN (?, ?, ?)"
            " AND a.text LIKE 'from %' ORDER BY p.wall_ns",
            [*params, *ok],
        ).fetchall()
        return [ProbeResult(r[0], r[1], r[2], r[3], r[4], Outcome(r[5]), r[6], r[7]) for r in rows]

    def events(
        self,
        runs: Sequence[int] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[NetEvent]:
        where, params = self._where(runs, since_ns, until_ns)
        rows = self._conn.execute(
            "SELECT wall_ns, mono_ns, netns, kind, ifname, subject, detail"
            f" FROM events{where} ORDER BY wall_ns, id",
            params,
        ).fetchall()
        return [_event(r) for r in rows]

    def facts(self, runs: Sequence[int] | None = None) -> list[dict[str, Any]]:
        where, params = self._where(runs, None, None)
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


class StoreWriter:
    """Batched writer owned by one thread. ``put_*`` never block on SQLite.

    Events are committed as soon as the writer wakes; probe results at least
    every ``flush_interval`` seconds. :meth:`close` flushes and joins.
    """

    def __init__(self, path: str | Path, run_id: int, flush_interval: float = 0.2) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.flush_interval = flush_interval
        self._conn = _connect(self.path, create=True)
        self._series: dict[tuple[str, str, str], int] = {}
        self._answers: dict[str, int] = {}
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    # -- producer side ------------------------------------------------------
    def put_probes(self, results: Iterable[ProbeResult]) -> None:
        self._queue.put(list(results))

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
                else:
                    pending.extend(item)  # type: ignore[arg-type]
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            due = time.monotonic() - last_flush >= self.flush_interval
            if events or (pending and (due or stopping or len(pending) >= 50_000)):
                try:
                    self._flush(pending, events)
                except sqlite3.Error as exc:
                    self._error = exc
                    return
                pending, events = [], []
                last_flush = time.monotonic()

    def _flush(self, probes: list[ProbeResult], events: list[NetEvent]) -> None:
        conn = self._conn
        run = self.run_id
        conn.execute("BEGIN")
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
        conn.execute("COMMIT")
