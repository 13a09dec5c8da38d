"""What the subcommand modules share: the exit status, value types, and the
options that mean the same thing in every command.

Each shared option is defined once here, so it is spelt the same everywhere:

  --netns NAME        which named network namespace (``ip netns list``)
  --target TARGET     where to act from: host, netns:NAME, pid:PID, container:NAME_OR_ID
  --host-netns NAME   the namespace that plays the host (holds the bridges)
  --docker-host URL   which Docker daemon (repeatable)
  --store FILE        which watch store
  --since T/--until T which time range
  --duration S        how long to run
  --json              machine-readable output on stdout
"""

from __future__ import annotations

import argparse
import enum
import os
from pathlib import Path

from netsleuth.errors import NotPermitted

__all__ = [
    "ExitStatus",
    "Parser",
    "add_docker_host_option",
    "add_duration_option",
    "add_host_netns_option",
    "add_json_option",
    "add_netns_option",
    "add_probe_options",
    "add_store_option",
    "add_target_option",
    "add_time_range_options",
    "docker_hosts",
    "nonneg_float",
    "positive_float",
    "positive_int",
    "print_usage",
    "require_root",
]


class ExitStatus(enum.IntEnum):
    """How netsleuth exits. Every handler returns one; ``main`` returns it."""

    OK = 0
    ERROR = 1  # an error the user must act on, printed as one line
    USAGE = 2  # bad usage or an unusable value
    FINDINGS = 3  # doctor: findings at or above --fail-on
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


Parser = argparse.ArgumentParser | argparse._ArgumentGroup

TARGET_FORMS = "host, netns:NAME, pid:PID, container:NAME_OR_ID"


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NotPermitted(f"{what} needs root (network namespaces, netlink); run it with sudo")


def print_usage(parser: argparse.ArgumentParser) -> ExitStatus:
    """A command that needs a subcommand, given none: its help, exit 2."""
    parser.print_help()
    return ExitStatus.USAGE


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


def add_netns_option(p: Parser, *, help: str, multiple: bool = False) -> argparse.Action:
    """``--netns NAME``: which named network namespace."""
    if multiple:
        return p.add_argument(
            "--netns", action="append", default=[], metavar="NAME", help=help + " (repeatable)"
        )
    return p.add_argument("--netns", metavar="NAME", help=help)


def add_target_option(p: Parser, *, help: str, multiple: bool = False) -> argparse.Action:
    """``--target TARGET``: host, netns:NAME, pid:PID or container:NAME_OR_ID."""
    if multiple:
        return p.add_argument("--target", action="append", default=[], metavar="TARGET", help=help)
    return p.add_argument("--target", metavar="TARGET", help=help)


def add_host_netns_option(p: Parser) -> argparse.Action:
    """``--host-netns NAME``: the namespace that plays the host."""
    return p.add_argument(
        "--host-netns",
        metavar="NAME",
        help="namespace that plays the host (holds the bridges), e.g. a lab's "
        "nsl-ID-host; default: this one",
    )


def add_docker_host_option(p: Parser, *, help: str) -> argparse.Action:
    """``--docker-host URL``, repeatable; read it with :func:`docker_hosts`."""
    return p.add_argument("--docker-host", action="append", default=[], metavar="URL", help=help)


def docker_hosts(given: list[str]) -> tuple[str, ...]:
    """The daemons of ``--docker-host``; none given: the default socket if it exists."""
    if given:
        return tuple(given)
    from netsleuth.watch.targets import DEFAULT_DOCKER_HOST

    default = Path(DEFAULT_DOCKER_HOST.removeprefix("unix://"))
    return (DEFAULT_DOCKER_HOST,) if default.exists() else ()


def add_store_option(p: Parser, *, help: str) -> argparse.Action:
    """``--store FILE``: which watch store (default None: the caller's default)."""
    return p.add_argument("--store", type=Path, metavar="FILE", help=help)


def add_time_range_options(p: Parser) -> None:
    """``--since T`` and ``--until T``."""
    p.add_argument(
        "--since", metavar="T", help="only data from T on: 15m, 2h, 1d (ago), 14:30, ISO time"
    )
    p.add_argument("--until", metavar="T", help="only data before T (same forms as --since)")


def add_duration_option(p: Parser, *, help: str, default: float | None = None) -> argparse.Action:
    """``--duration S``: seconds."""
    return p.add_argument(
        "--duration", type=positive_float, default=default, metavar="S", help=help
    )


def add_json_option(p: Parser, *, help: str) -> argparse.Action:
    """``--json``: machine-readable output on stdout."""
    return p.add_argument("--json", action="store_true", help=help)


def add_probe_options(p: Parser, *, rate: float, probe_required: bool) -> None:
    """--target, --probe, --rate, --timeout, --store, --docker-host, --host-netns:
    the options of everything that runs the watch engine."""
    add_target_option(
        p,
        multiple=True,
        help=f"where to probe from: {TARGET_FORMS} (repeatable; default: host)",
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
    add_store_option(
        p,
        help="SQLite store to append to (default: $NETSLEUTH_STORE, or "
        "/var/lib/netsleuth/netsleuth.sqlite)",
    )
    add_docker_host_option(
        p,
        help="Docker daemon(s) for container targets and events, e.g. "
        "unix:///run/docker-ci.sock (default socket if present)",
    )
    add_host_netns_option(p)
