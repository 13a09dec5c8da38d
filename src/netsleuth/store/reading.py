"""Reading the probe attempts of a selection (runs, a time range) piece by
piece: the column blocks that overlap it, those at its edges trimmed, and
the rows not yet compacted. Each piece decodes only the columns asked of it
(:class:`Piece`), so a reader pays for what it uses:

- :func:`grouped`: the attempts grouped by a key of their series (the
  target, for the analysis), each group in time order, without ever holding
  every attempt's wall time twice (no array of all attempts in time order,
  then a copy in group order): a first pass counts each group's attempts
  from the series and outcome columns, a second decodes the wall times
  straight into their group's place;
- :func:`sourced_of`: the failed attempts with an answer id, for
  :meth:`~netsleuth.store.Store.sourced_failures` (their other columns are
  decoded only for the blocks that have any).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from netsleuth.model import Outcome
from netsleuth.store import blocks

__all__ = [
    "Piece",
    "ProbeGroups",
    "Selection",
    "Sourced",
    "SourcedParts",
    "failed_of",
    "grouped",
    "pieces",
    "select",
    "sourced_of",
    "where",
]

_I64 = npt.NDArray[np.int64]
_Int = npt.NDArray[np.signedinteger[Any]]


_OK, _NXDOMAIN, _GONE = int(Outcome.OK), int(Outcome.NXDOMAIN), int(Outcome.TARGET_GONE)


def failed_of(outcome: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.bool_]:
    """Which attempts failed (not OK, NXDOMAIN or gone): three comparisons,
    one pass each, no sort and no index array."""
    failed: npt.NDArray[np.bool_] = outcome != _OK
    failed &= outcome != _NXDOMAIN
    failed &= outcome != _GONE
    return failed


class Piece:
    """The attempts of one block (decoded column by column when asked), or
    of rows already decoded (a trimmed edge block, rows not yet compacted)."""

    def __init__(
        self,
        run: int | _I64,
        *,
        raw: blocks.Raw | None = None,
        block: blocks.Block | None = None,
        blob: bytes | None = None,
    ) -> None:
        assert (raw is None) != (block is None)
        self.run = run
        self.raw = raw
        self.block = block
        self.blob = blob
        self.rows = raw.rows if raw is not None else len(block.wall_ns)  # type: ignore[union-attr]

    def series(self) -> _Int:
        if self.raw is not None:
            return self.raw.column(blocks.SERIES)  # type: ignore[return-value]
        assert self.block is not None
        return self.block.series

    def outcome(self) -> npt.NDArray[np.integer[Any]]:
        if self.raw is not None:
            return self.raw.column(blocks.OUTCOME)
        assert self.block is not None
        return self.block.outcome

    def wall_ns(self, out: _I64) -> _I64:
        """The wall times, written into ``out`` (``rows`` long)."""
        if self.raw is not None:
            return self.raw.wall_ns(out)
        assert self.block is not None
        out[:] = self.block.wall_ns
        return out

    def mono_ns(self, wall_ns: _I64) -> _I64:
        if self.raw is not None:
            return self.raw.mono_ns(wall_ns)
        assert self.block is not None
        return self.block.mono_ns

    def latency_ns(self) -> npt.NDArray[np.integer[Any]]:
        if self.raw is not None:
            return self.raw.column(blocks.LATENCY)
        assert self.block is not None
        return self.block.latency_ns

    def answer(self) -> npt.NDArray[np.integer[Any]]:
        if self.raw is not None:
            return self.raw.column(blocks.ANSWER)
        assert self.block is not None
        return self.block.answer


_HOT = (
    "SELECT run, series, wall_ns, mono_ns, outcome, coalesce(latency_ns, -1),"
    " coalesce(answer, 0) FROM probes"
)


@dataclass(frozen=True, slots=True)
class Selection:
    """What a read covers: the blocks that overlap it (those at its edges
    already decoded and trimmed) and the rows not yet compacted."""

    conn: sqlite3.Connection
    order: list[tuple[int, int]]
    """(id, run) of the blocks, by start time."""
    edges: dict[int, blocks.Block]
    hot: blocks.Block | None
    hot_run: _I64
    rows: int
    """Attempts in all."""


def where(
    runs: Sequence[int] | None, since_ns: int | None, until_ns: int | None
) -> tuple[str, list[int]]:
    """The ``WHERE`` clause (or "") and its parameters selecting rows with
    ``run`` and ``wall_ns`` columns by run and time range."""
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


def select(
    conn: sqlite3.Connection,
    runs: Sequence[int] | None,
    since_ns: int | None,
    until_ns: int | None,
) -> Selection:
    """Find the selection's blocks and read its edges and uncompacted rows.
    Call inside a transaction, and iterate :func:`pieces` in the same one:
    the two tables must be read in one snapshot."""
    lo = -(2**63) if since_ns is None else since_ns
    hi = 2**63 - 1 if until_ns is None else until_ns
    run_clause, run_params = "", []
    if runs:
        run_clause = f" AND run IN ({','.join('?' * len(runs))})"
        run_params = list(runs)
    block_where = f" WHERE t_end >= ? AND t_start < ?{run_clause}"
    params = [lo, hi, *run_params]
    edges: dict[int, blocks.Block] = {}
    inner = 0
    order: list[tuple[int, int]] = []
    # sorted without their data (a sort that carried the BLOBs would copy them all)
    for bid, rid, t_start, t_end, rows in conn.execute(
        f"SELECT id, run, t_start, t_end, rows FROM probe_blocks{block_where} ORDER BY t_start, id",
        params,
    ):
        order.append((int(bid), int(rid)))
        if t_start >= lo and t_end < hi:
            inner += rows
            continue
        (blob,) = conn.execute("SELECT data FROM probe_blocks WHERE id=?", (bid,)).fetchone()
        block = blocks.decode(blob)
        keep = (block.wall_ns >= lo) & (block.wall_ns < hi)
        edges[bid] = blocks.Block(*(getattr(block, f)[keep] for f in blocks.Block.__slots__))
    hot_where, hot_params = where(runs, since_ns, until_ns)
    rows = conn.execute(f"{_HOT}{hot_where} ORDER BY wall_ns", hot_params).fetchall()
    hot, hot_run = None, np.empty(0, dtype=np.int64)
    if rows:
        data = np.array(rows, dtype=np.int64)
        hot_run = data[:, 0].copy()
        hot = blocks.Block(
            series=data[:, 1].copy(),
            wall_ns=data[:, 2].copy(),
            mono_ns=data[:, 3].copy(),
            outcome=data[:, 4].astype(np.int8),
            latency_ns=data[:, 5].copy(),
            answer=data[:, 6].copy(),
        )
    total = inner + sum(len(b.wall_ns) for b in edges.values()) + len(rows)
    return Selection(conn, order, edges, hot, hot_run, total)


def pieces(sel: Selection) -> Iterator[Piece]:
    """The selection's attempts, piece by piece, in the order they are stored
    (blocks by their start, then the uncompacted rows by time). May be
    iterated more than once (inside the same transaction)."""
    for bid, rid in sel.order:
        edge = sel.edges.get(bid)
        if edge is not None:
            yield Piece(rid, block=edge)
        else:
            (blob,) = sel.conn.execute(
                "SELECT data FROM probe_blocks WHERE id=?", (bid,)
            ).fetchone()
            yield Piece(rid, raw=blocks.raw(blob), blob=blob)
    if sel.hot is not None:
        yield Piece(sel.hot_run, block=sel.hot)


@dataclass(frozen=True, slots=True)
class Sourced:
    """The failed attempts that have an answer id (the candidates of
    :meth:`~netsleuth.store.Store.sourced_failures`), in time order."""

    wall_ns: _I64
    mono_ns: _I64
    series: _I64
    outcome: _I64
    latency_ns: _I64
    answer: _I64


class SourcedParts:
    """Collects :class:`Sourced` rows piece by piece."""

    def __init__(self) -> None:
        self.parts: list[tuple[_I64, ...]] = []

    def add(
        self,
        piece: Piece,
        wall: _I64,
        outcome: npt.NDArray[np.integer[Any]],
        failed: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """The candidates of ``piece`` (whose wall times, outcomes and, when
        given, failures are decoded already); its answers only when it has a
        failure."""
        if failed is None:
            failed = failed_of(outcome)
        if not bool(failed.any()):
            return  # most blocks have no failure: answer stays packed
        answer = piece.answer()
        hit = np.flatnonzero(failed & (answer > 0))
        if hit.size == 0:
            return
        self.parts.append(
            tuple(
                np.asarray(a)[hit].astype(np.int64)
                for a in (
                    wall,
                    piece.mono_ns(wall),
                    piece.series(),
                    outcome,
                    piece.latency_ns(),
                    answer,
                )
            )
        )

    def done(self) -> Sourced:
        if not self.parts:
            none = np.empty(0, dtype=np.int64)
            return Sourced(none, none, none, none, none, none)
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        order = np.argsort(cols[0], kind="stable")  # as in the columns sorted by time
        return Sourced(*(c[order] for c in cols))


def sourced_of(sel: Selection) -> Sourced:
    """Only the candidates of :meth:`~netsleuth.store.Store.sourced_failures`."""
    parts = SourcedParts()
    buf = np.empty(blocks.BLOCK_ROWS, dtype=np.int64)
    for piece in pieces(sel):
        out = buf[: piece.rows] if piece.rows <= buf.size else np.empty(piece.rows, np.int64)
        parts.add(piece, piece.wall_ns(out), piece.outcome())
    return parts.done()


@dataclass(frozen=True, slots=True)
class ProbeGroups:
    """The attempts of a selection grouped by a key of their series: group
    ``g`` has rows ``bounds[g]:bounds[g + 1]`` of ``wall_ns`` and ``failed``,
    in time order (equal times in stored order). Attempts recorded while
    their target was gone are not in the groups, only their times in
    ``gone_ns``; attempts of series with no group are in no group but in the
    totals."""

    bounds: list[int]
    wall_ns: _I64
    failed: npt.NDArray[np.bool_]
    gone_ns: list[_I64]
    """Per group, the times of its attempts while gone (ascending)."""
    attempts: int
    """Attempts of every series, gone ones left out."""
    failures: int
    first_ns: int | None
    last_ns: int | None
    """The first and last time of those attempts."""
    series_attempts: _I64
    """Per series id, its attempts (gone ones left out)."""
    not_ok: dict[int, int] = field(default_factory=dict)
    """``series * 256 + outcome`` -> attempts, for outcomes other than OK
    (and gone)."""
    runs: frozenset[int] = frozenset()
    """The runs with any attempt in the selection."""


def grouped(
    sel: Selection,
    group_of: Mapping[int, int],
    groups: int,
    *,
    series_ids: int,
    sourced: SourcedParts | None = None,
) -> ProbeGroups:
    """Group the selection's attempts by ``group_of`` (series id -> group
    ``0 ... groups - 1``; ids below ``series_ids``). Two passes over the
    pieces (see the module docstring); ``sourced`` collects the
    candidates of ``sourced_failures`` on the way."""
    dtype = np.int8 if groups < 126 else np.int16 if groups < 2**15 - 2 else np.int32
    lut = np.full(max(series_ids, max(group_of, default=0) + 1), -1, dtype)
    for sid, g in group_of.items():
        lut[sid] = g
    sizes = np.zeros(groups + 1, dtype=np.int64)  # slot 0: no group (or gone)
    codes: list[npt.NDArray[np.signedinteger[Any]]] = []
    per_series = np.zeros(lut.size, dtype=np.int64)
    not_ok: Counter[int] = Counter()
    runs: set[int] = set()
    failures = 0
    for piece in pieces(sel):
        if piece.rows == 0:
            continue
        series, outcome = piece.series(), piece.outcome()
        gone = outcome == _GONE
        # group + 1 (0: none); gone: -(group + 2) (-1: none)
        code: npt.NDArray[np.signedinteger[Any]] = lut[series]  # type: ignore[assignment]
        code += 1
        np.negative(code, out=code, where=gone)
        code -= gone
        codes.append(code)
        sizes += np.bincount(np.maximum(code, 0), minlength=groups + 1)
        here = ~gone
        per_series += np.bincount(series[here], minlength=lut.size)
        rest = np.flatnonzero(here & (outcome != _OK))
        if rest.size:
            failures += int(failed_of(outcome[rest]).sum())
            keys, n = np.unique(
                series[rest].astype(np.int64) * 256 + outcome[rest].astype(np.int64),
                return_counts=True,
            )
            not_ok.update(dict(zip(keys.tolist(), n.tolist(), strict=True)))
        if isinstance(piece.run, int):
            runs.add(piece.run)
        else:
            runs.update(np.unique(piece.run).tolist())
    bounds = np.cumsum(np.concatenate(([0], sizes[1:]))).tolist()
    wall = np.empty(bounds[-1], dtype=np.int64)
    failed = np.empty(bounds[-1], dtype=np.bool_)
    at = np.asarray(bounds[:-1], dtype=np.int64)
    gone_parts: list[list[_I64]] = [[] for _ in range(groups)]
    attempts = 0
    first: int | None = None
    last: int | None = None
    buf = np.empty(blocks.BLOCK_ROWS, dtype=np.int64)
    for piece, code in zip((p for p in pieces(sel) if p.rows), codes, strict=True):
        out = buf[: piece.rows] if piece.rows <= buf.size else np.empty(piece.rows, np.int64)
        w = piece.wall_ns(out)
        outcome = piece.outcome()
        failed_here = failed_of(outcome)
        if sourced is not None:
            sourced.add(piece, w, outcome, failed_here)
        here = code >= 0
        kept = w
        if not bool(here.all()):
            for v in np.unique(code[code <= -2]).tolist():
                gone_parts[-v - 2].append(w[code == v].copy())
            kept = w[here]
        attempts += kept.size
        if kept.size:
            lo, hi = int(kept.min()), int(kept.max())
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
        _scatter(code, w, failed_here, at, out=(wall, failed))
    for g in range(groups):
        _sort_group(wall, failed, bounds[g], bounds[g + 1])
    gone_ns = [
        np.sort(np.concatenate(p), kind="stable") if p else np.empty(0, dtype=np.int64)
        for p in gone_parts
    ]
    return ProbeGroups(
        bounds,
        wall,
        failed,
        gone_ns,
        attempts,
        failures,
        first,
        last,
        per_series,
        dict(not_ok),
        frozenset(runs),
    )


def _scatter(
    code: npt.NDArray[np.signedinteger[Any]],
    wall: _I64,
    failed: npt.NDArray[np.bool_],
    at: _I64,
    *,
    out: tuple[_I64, npt.NDArray[np.bool_]],
) -> None:
    """Append a piece's attempts with a group (``code`` > 0: group + 1) to
    their groups' places (``at``: where each group's next attempt goes),
    keeping their order: a stable (radix) sort of the piece by group, then
    one slice copy per group present."""
    order = np.argsort(code, kind="stable")
    by_group, failed_by_group = wall[order], failed[order]
    counts = np.bincount(np.maximum(code, 0), minlength=at.size + 1)
    ends = np.cumsum(counts).tolist()
    wall_out, failed_out = out
    for g in np.flatnonzero(counts[1:]).tolist():
        lo, hi = ends[g], ends[g + 1]  # group g is code g + 1: after no group and gone
        dst = int(at[g])
        wall_out[dst : dst + hi - lo] = by_group[lo:hi]
        failed_out[dst : dst + hi - lo] = failed_by_group[lo:hi]
        at[g] += hi - lo


def _sort_group(wall: _I64, failed: npt.NDArray[np.bool_], lo: int, hi: int) -> None:
    """Put a group's attempts in time order (equal times keep their order)
    when they are not already: runs recorded at the same time, late rows."""
    w = wall[lo:hi]
    if w.size > 1 and not bool(np.all(w[1:] >= w[:-1])):
        order = np.argsort(w, kind="stable")
        wall[lo:hi] = w[order]
        failed[lo:hi] = failed[lo:hi][order]
