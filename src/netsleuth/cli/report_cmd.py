"""`netsleuth report`: name the root cause from what `watch` recorded."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netsleuth.cli._common import (
    ExitStatus,
    add_json_option,
    add_store_option,
    add_time_range_options,
)
from netsleuth.errors import InvalidArgument
from netsleuth.store.sqlite import default_store_path

if TYPE_CHECKING:
    from netsleuth.store import RunInfo

__all__ = ["add_parser", "parse_time", "select_runs", "store_path"]

_DESCRIPTION = """\
Read a store written by `netsleuth watch` (or `netsleuth lab`), find the outage
episodes of every target, test which kinds of network events come right before
them (Fisher's exact test, Holm-corrected), compare the targets with the host
control, and name the root cause with its fix.

examples:
  netsleuth report                         everything in the default store
  netsleuth report blue.sqlite             everything in this store (same as --store FILE)
  netsleuth report --run last --html r.html  the latest run, plus a page with a timeline
  netsleuth report --since 2h --json       the last two hours, as JSON (keys: docs/report.md)
  netsleuth report --since 2026-05-01T22:00 --until 2026-05-02T06:00
"""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now_ns: int) -> int:
    """Wall-clock ns of a --since/--until value: ``30s``/``15m``/``2h``/``1d`` ago,
    epoch seconds, ``HH:MM[:SS]`` today (local time) or an ISO 8601 date/time
    (local time unless it carries a zone)."""
    s = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", s)
    if m:
        return now_ns - int(float(m.group(1)) * _UNITS[m.group(2)] * 1e9)
    if re.fullmatch(r"\d{9,}(?:\.\d+)?", s):
        return int(float(s) * 1e9)
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", s):
            today = datetime.fromtimestamp(now_ns / 1e9).astimezone()
            parsed = datetime.strptime(s if s.count(":") == 2 else s + ":00", "%H:%M:%S")
            dt = today.replace(
                hour=parsed.hour, minute=parsed.minute, second=parsed.second, microsecond=0
            )
        else:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.astimezone()
    except ValueError:
        raise InvalidArgument(
            f"cannot read time {text!r}; use e.g. 15m, 2h, 1d (ago), 14:30, "
            "2026-05-01T22:00 or epoch seconds"
        ) from None
    return int(dt.timestamp() * 1e9)


def select_runs(wanted: Sequence[str] | None, runs: Sequence[RunInfo]) -> list[int] | None:
    """Run ids for ``--run`` values (numbers or ``last``); None selects all."""
    if not wanted:
        return None
    known = {r.id for r in runs}
    out: list[int] = []
    for w in wanted:
        if w == "last":
            if not runs:
                raise InvalidArgument(
                    "the store has no runs yet; record one with `netsleuth watch`"
                )
            out.append(max(known))
            continue
        try:
            rid = int(w)
        except ValueError:
            raise InvalidArgument(f"--run takes a run number or 'last', not {w!r}") from None
        if rid not in known:
            have = ", ".join(str(r) for r in sorted(known)) or "none"
            raise InvalidArgument(f"run {rid} is not in the store (runs: {have})")
        out.append(rid)
    return sorted(set(out))


def store_path(positional: Path | None, option: Path | None) -> Path:
    """The store of ``report [STORE] [--store FILE]``: either spelling, or the
    default; both naming different files is a usage error."""
    if positional is not None and option is not None and positional != option:
        raise InvalidArgument(
            f"two stores given, {positional} and --store {option}: give one of them"
        )
    return positional or option or default_store_path()


def _handle(args: argparse.Namespace) -> ExitStatus:
    # imported here: scipy and matplotlib take a while, and every other command
    # (and `netsleuth --help`) builds this parser too
    from rich.console import Console

    from netsleuth.analysis import analyze
    from netsleuth.report import render_terminal, to_json, write_html
    from netsleuth.store import Store

    now = time.time_ns()
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    if since is not None and until is not None and since >= until:
        raise InvalidArgument("--since must be earlier than --until")
    with Store(store_path(args.store_file, args.store)) as store:
        runs = select_runs(args.run, store.runs())
        analysis = analyze(store, runs=runs, since_ns=since, until_ns=until)
    if args.html:
        write_html(analysis, args.html)
    if args.json:
        json.dump(to_json(analysis), sys.stdout, indent=2)
        sys.stdout.write("\n")
        if args.html:
            print(f"wrote {args.html}", file=sys.stderr)
    else:
        console = Console()
        render_terminal(analysis, console)
        if args.html:
            console.print(f"wrote {args.html}")
    return ExitStatus.OK


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="name the root cause from a store, with statistics and the fix",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = default_store_path()
    parser.add_argument(
        "store_file",
        nargs="?",
        type=Path,
        metavar="STORE",
        help=f"store to read (default: {default}; $NETSLEUTH_STORE overrides)",
    )
    add_store_option(parser, help="the same as STORE")
    parser.add_argument(
        "--run",
        action="append",
        metavar="N",
        help="only this run (a number, or 'last'); repeat for several; default: all runs",
    )
    add_time_range_options(parser)
    add_json_option(parser, help="print JSON (keys: docs/report.md)")
    parser.add_argument(
        "--html", metavar="FILE", help="also write a self-contained page with a timeline plot"
    )
    parser.set_defaults(handler=_handle)
