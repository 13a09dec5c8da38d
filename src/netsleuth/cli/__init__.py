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
_COMMANDS = [
    "lab",
    "watch",
    "report",
    "doctor",
    "fix",
    "capture",
    "explain",
    "drops",
    "exporter",
    "deps",  # check-deps
    "completion",
]

_DESCRIPTION = """\
Find the root cause of sporadic connectivity failures of containers and
network namespaces on this host.

Start here:   netsleuth lab demo        reproduce the bridge-MAC outage, find it, fix it
Your host:    netsleuth doctor          audit bridges, NAT, conntrack, MTU, Docker
              netsleuth watch ...       probe from containers/namespaces, record events
              netsleuth report          name the cause from what watch recorded
"""


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from netsleuth.cli.deps_cmd import version_text

        print(version_text())
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that subcommand's module
    (what ``main`` uses to run one: the modules of the other commands import
    the lab, the audit and the packet code, which a report never needs)."""
    parser = argparse.ArgumentParser(
        prog="netsleuth",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="show the version, the Python, whether the compiled modules are in use, "
        "and the kernel features found (tracefs, BTF, nft, bpftrace, Docker), and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only else _COMMANDS:
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


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """Only the named command's parser when ``argv`` starts with a command
    whose module is called after it (the same parse, without importing the
    others); the whole parser for anything else (help, options first, typos)."""
    name = argv[0] if argv else ""
    if name in _COMMANDS:
        parser = build_parser(only=name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if name in sub.choices:
            return parser
    return build_parser()


def main(argv: Sequence[str] | None = None) -> ExitStatus:
    _install_sigterm()
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:  # fast: no parser built
        from netsleuth.cli.deps_cmd import version_text

        print(version_text())
        return ExitStatus.OK
    parser = _parser_for(list(sys.argv[1:] if argv is None else argv))
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
