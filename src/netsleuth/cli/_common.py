"""Helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from netsleuth.errors import NotPermitted

__all__ = [
    "add_probe_options",
    "nonneg_float",
    "not_implemented",
    "positive_float",
    "positive_int",
    "require_root",
]


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NotPermitted(f"{what} needs root (network namespaces, netlink); run it with sudo")


def not_implemented(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(f"netsleuth: {name} is not implemented yet", file=sys.stderr)
        return 2

    return handler


def _number(text: str, kind: type[float] | type[int], word: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {word}") from None


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def positive_int(text: str) -> int:
    value = int(_number(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def nonneg_float(text: str) -> float:
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def add_probe_options(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, *, rate: float, probe_required: bool
) -> None:
    """--target, --probe, --rate, --timeout, --store, --docker-host, --host-netns:
    the options of everything that runs the watch engine."""
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="TARGET",
        help="where to probe from: host, netns:NAME, pid:PID, container:NAME_OR_ID "
        "(repeatable; default: host)",
    )
    p.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="PROBE",
        required=probe_required,
        help="what to probe: dns:SERVER/NAME[/TYPE], dns:NAME, resolve:NAME, "
        "tcp:HOST:PORT, icmp:HOST (repeatable)",
    )
    p.add_argument(
        "--rate",
        type=positive_float,
        default=rate,
        metavar="R",
        help=f"attempts per second per probe, on a fixed schedule (default {rate:g})",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds before an attempt counts as timed out (default 1)",
    )
    p.add_argument(
        "--store",
        type=Path,
        metavar="FILE",
        help="SQLite store to append to (default: $NETSLEUTH_STORE, or "
        "/var/lib/netsleuth/netsleuth.sqlite)",
    )
    p.add_argument(
        "--docker-host",
        action="append",
        default=[],
        metavar="URL",
        help="Docker daemon(s) for container targets and events, e.g. "
        "unix:///run/docker-ci.sock (default socket if present)",
    )
    p.add_argument(
        "--host-netns",
        metavar="NAME",
        help="namespace that plays the host (holds the bridges), e.g. a lab's "
        "nsl-ID-host; default: this one",
    )
