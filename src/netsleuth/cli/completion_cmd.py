"""`netsleuth completion bash|zsh`: the shell completion script.

Generated with shtab from the very parser the command line runs, so every
command and option completes as it is spelt; values complete live at the
prompt: namespace names (``--netns``, ``--host-netns``) from ``/run/netns``,
targets (``--target``) in their forms (``host``, ``netns:NAME``, ``pid:``,
``container:NAME`` of the running containers when the ``docker`` client
answers within a second), probe forms (``--probe``) and files (every
``FILE``: captures, stores). ``scripts/setup`` installs both scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from netsleuth.cli._common import ExitStatus

__all__ = ["SHELLS", "add_parser", "script"]

SHELLS = ("bash", "zsh")

NETNS_CMD = "ls -1 /run/netns 2>/dev/null"
TARGET_CMD = (
    "printf '%s\\n' host pid: container: "
    "$(ls -1 /run/netns 2>/dev/null | sed 's/^/netns:/') "
    "$(timeout 1 docker ps --format 'container:{{.Names}}' 2>/dev/null)"
)
PROBE_CMD = "printf '%s\\n' dns: resolve: tcp: icmp:"

_DESCRIPTION = """\
Print the completion script of a shell: commands, options, namespace names,
target and probe forms. scripts/setup installs both; to install by hand:

  netsleuth completion bash > /etc/bash_completion.d/netsleuth
  netsleuth completion zsh  > /usr/local/share/zsh/site-functions/_netsleuth"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print the bash or zsh completion script",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=SHELLS, help="which shell")
    p.set_defaults(handler=_completion)


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every action of a parser and of its subcommands, recursively."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for child in {id(p): p for p in action.choices.values()}.values():
                yield from _actions(child)


def script(shell: str, parser: argparse.ArgumentParser | None = None) -> str:
    """The completion script of ``shell`` for netsleuth's parser."""
    import shtab

    if parser is None:
        from netsleuth.cli import build_parser

        parser = build_parser()
    live = {
        "--netns": shtab.cmd(NETNS_CMD),
        "--host-netns": shtab.cmd(NETNS_CMD),
        "--target": shtab.cmd(TARGET_CMD),
        "--probe": shtab.cmd(PROBE_CMD),
    }
    for action in _actions(parser):
        for option in action.option_strings:
            if option in live:
                action.complete = live[option]  # type: ignore[attr-defined]
        if action.metavar == "FILE" and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell)


def _completion(args: argparse.Namespace) -> ExitStatus:
    print(script(args.shell))
    return ExitStatus.OK
