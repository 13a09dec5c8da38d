"""Probe attempts as compressed column blocks (schema 2).

A block holds up to :data:`BLOCK_ROWS` consecutive attempts of one run (every
series of the run, sorted by wall time) as one row of ``probe_blocks``: its
time span (``t_start``/``t_end``, both inclusive), its row count, and one
BLOB with the columns. Reading a time range reads only the blocks that
overlap it, and a block decodes with :func:`numpy.frombuffer` and a running
sum instead of one Python tuple per attempt.

Encoding of the BLOB (little endian): a header ``<BI2q`` (format version,
row count, the first wall time and the first ``mono - wall`` offset), then six
columns, each ``<BBI`` (width in bytes, zlib-compressed or not, length) and its
bytes, narrowed to the smallest signed integer type that holds it:

- ``series``: series ids;
- ``wall``: differences of consecutive wall times (first one 0);
- ``mono``: differences of consecutive ``mono_ns - wall_ns`` (the two clocks
  drift slowly, so these are small);
- ``outcome``: :class:`~netsleuth.model.Outcome` values;
- ``latency``: nanoseconds, -1 where no answer came back;
- ``answer``: ids in ``answers``, 0 for none.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLOCK_ROWS",
    "Block",
    "Raw",
    "block_rows",
    "decode",
    "decode_into",
    "empty",
    "encode",
    "raw",
]

BLOCK_ROWS = 16_384
"""Attempts per block at most (at 200 attempts/s, about 80 s of a run)."""

_VERSION = 2
_HEAD = struct.Struct("<BI2q")
_COLUMN = struct.Struct("<BBI")  # width, compressed, byte length
_NCOLS = 6
_WIDTHS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}
_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Block:
    """The decoded columns of one block (all int64 but ``outcome``)."""

    series: _I64
    wall_ns: _I64
    mono_ns: _I64
    outcome: npt.NDArray[np.int8]
    latency_ns: _I64
    answer: _I64


def _narrow(values: npt.NDArray[np.integer[Any]]) -> tuple[int, bytes]:
    """The width of the smallest signed type that holds ``values``, and their bytes."""
    if values.size == 0:
        return 1, b""
    lo, hi = int(values.min()), int(values.max())
    for width, dtype in _WIDTHS.items():
        bound = 1 << (8 * width - 1)
        if -bound <= lo and hi < bound:
            return width, values.astype(dtype, copy=False).tobytes()
    raise AssertionError("int64 holds every int64")


def _deltas(values: _I64) -> _I64:
    out = np.empty_like(values)
    if values.size:
        out[0] = 0
        np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def _pack(width: int, data: bytes) -> bytes:
    """A column: compressed when that saves at least a third (the columns of
    small repeating values: series, outcome, answer); the others stay raw,
    as inflating them costs more time than their pages take to read."""
    packed = zlib.compress(data, 1) if data else data
    if len(packed) * 3 < len(data) * 2:
        return _COLUMN.pack(width, 1, len(packed)) + packed
    return _COLUMN.pack(width, 0, len(data)) + data


def encode(
    series: _I64,
    wall_ns: _I64,
    *,
    mono_ns: _I64,
    outcome: npt.NDArray[np.int8],
    latency_ns: _I64,
    answer: _I64,
) -> bytes:
    """The BLOB of one block; the rows must be sorted by ``wall_ns``."""
    n = int(wall_ns.size)
    offset = mono_ns - wall_ns
    wall0 = int(wall_ns[0]) if n else 0
    off0 = int(offset[0]) if n else 0
    columns = [
        _narrow(series),
        _narrow(_deltas(wall_ns)),
        _narrow(_deltas(offset)),
        _narrow(outcome),
        _narrow(latency_ns),
        _narrow(answer),
    ]
    return _HEAD.pack(_VERSION, n, wall0, off0) + b"".join(_pack(w, b) for w, b in columns)


def block_rows(blob: bytes) -> int:
    """The number of attempts in a BLOB (without decoding it)."""
    return int(_HEAD.unpack_from(blob)[1])


def _columns(blob: bytes) -> tuple[int, int, int, list[npt.NDArray[np.integer[Any]]]]:
    version, n, wall0, off0 = _HEAD.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"probe block of unknown format {version}")
    view = memoryview(blob)
    pos = _HEAD.size
    cols: list[npt.NDArray[np.integer[Any]]] = []
    for _ in range(_NCOLS):
        width, compressed, length = _COLUMN.unpack_from(view, pos)
        pos += _COLUMN.size
        data: bytes | memoryview = view[pos : pos + length]
        pos += length
        if compressed:
            data = zlib.decompress(data)
        cols.append(np.frombuffer(data, dtype=_WIDTHS[width], count=n))
    return n, wall0, off0, cols


SERIES, WALL, MONO, OUTCOME, LATENCY, ANSWER = range(_NCOLS)
"""Column numbers of a block, for :meth:`Raw.column`."""


@dataclass(frozen=True, slots=True)
class Raw:
    """A block's columns as stored (deltas, narrow types), each decompressed
    only when asked for: a reader that needs a few columns of every block,
    and the others of a few rows, pays for no more."""

    rows: int
    wall0: int
    off0: int
    spans: tuple[tuple[int, int, memoryview], ...]
    """(width, compressed, bytes) of each column."""

    def column(self, k: int) -> npt.NDArray[np.integer[Any]]:
        """Column ``k`` (:data:`SERIES` ...) as stored: ``WALL`` and ``MONO``
        are differences (see :func:`wall_ns`, :func:`mono_ns`)."""
        width, compressed, data = self.spans[k]
        buf: bytes | memoryview = zlib.decompress(data) if compressed else data
        return np.frombuffer(buf, dtype=_WIDTHS[width], count=self.rows)

    def wall_ns(self, out: _I64) -> _I64:
        """The wall times, written into ``out`` (``rows`` long)."""
        np.cumsum(self.column(WALL), dtype=np.int64, out=out)
        out += self.wall0
        return out

    def mono_ns(self, wall_ns: _I64) -> _I64:
        """The monotonic times (a new array), given the wall times."""
        mono = np.cumsum(self.column(MONO), dtype=np.int64)
        mono += self.off0
        mono += wall_ns
        return mono


def raw(blob: bytes) -> Raw:
    """A BLOB's header and the places of its columns (nothing decoded yet)."""
    version, n, wall0, off0 = _HEAD.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"probe block of unknown format {version}")
    view = memoryview(blob)
    pos = _HEAD.size
    spans = []
    for _ in range(_NCOLS):
        width, compressed, length = _COLUMN.unpack_from(view, pos)
        pos += _COLUMN.size
        spans.append((width, compressed, view[pos : pos + length]))
        pos += length
    return Raw(n, wall0, off0, tuple(spans))


def decode_into(blob: bytes, out: Block, start: int) -> int:
    """Decode a BLOB into ``out``'s arrays from row ``start`` on (no
    temporaries of the output's size); returns the number of rows."""
    n, wall0, off0, (series, dwall, doff, outcome, latency, answer) = _columns(blob)
    end = start + n
    wall = out.wall_ns[start:end]
    np.cumsum(dwall, dtype=np.int64, out=wall)
    wall += wall0
    mono = out.mono_ns[start:end]
    np.cumsum(doff, dtype=np.int64, out=mono)
    mono += off0
    mono += wall
    out.series[start:end] = series
    out.outcome[start:end] = outcome
    out.latency_ns[start:end] = latency
    out.answer[start:end] = answer
    return n


def empty(n: int) -> Block:
    """Uninitialised columns for ``n`` attempts."""
    return Block(
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
    )


def decode(blob: bytes) -> Block:
    """The columns of a BLOB made by :func:`encode`."""
    out = empty(block_rows(blob))
    decode_into(blob, out, 0)
    return out
