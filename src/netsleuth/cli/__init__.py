"""The command line: a thin layer that parses, calls the library, renders.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``;
the parser it adds sets ``handler`` to a function ``(args) -> ExitStatus``.
Exit codes live in one place, :class:`ExitStatus`: 0 success, 1 an error the
user must act on (printed as one line), 2 bad usage or "not implemented yet",
3 findings at or above ``--fail-on`` (doctor), 130 interrupted. The options
that mean the same thing in several commands are defined once, in
:mod:`netsleuth.cli._common`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from netsleuth import __version__
from netsleuth.cli._common import ExitStatus
from netsleuth.errors import NetsleuthError

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ExitStatus",
    "build_parser",
    "main",
    "run",
]

# The older names of the exit statuses, for callers that import them.
EXIT_OK = ExitStatus.OK
EXIT_ERROR = ExitStatus.ERROR
EXIT_USAGE = ExitStatus.USAGE
EXIT_FINDINGS = ExitStatus.FINDINGS
EXIT_INTERRUPTED = ExitStatus.INTERRUPTED

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ["lab", "watch", "report", "doctor", "fix", "capture", "explain", "drops", "exporter"]

_DESCRIPTION = """\
Find the root cause of sporadic connectivity failures of containers and
network namespaces on this host.

Start here:   netsleuth lab demo        reproduce the bridge-MAC outage, find it, fix it
Your host:    netsleuth doctor          audit bridges, NAT, conntrack, MTU, Docker
              netsleuth watch ...       probe from containers/namespaces, record events
              netsleuth report          name the cause from what watch recorded
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsleuth",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsleuth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"netsleuth.cli.{name}_cmd")
        module.add_parser(sub)
    return parser


def _install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every context manager tears down.

    Only in this process: a forked helper (pyroute2 forks to open sockets in
    other namespaces) that gets SIGTERM must just exit, not run our teardown.
    """
    main_pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> ExitStatus:
    _install_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return ExitStatus.USAGE
    try:
        return ExitStatus(args.handler(args))
    except NetsleuthError as exc:
        print(f"netsleuth: error: {exc}", file=sys.stderr)
        return ExitStatus(exc.exit_code)
    except KeyboardInterrupt:
        print("netsleuth: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return ExitStatus.OK


def run() -> None:
    sys.exit(main())
