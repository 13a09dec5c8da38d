"""`netsleuth doctor`: audit this host (or namespaces) for the known causes
of flaky container networking; render findings grouped by severity."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netsleuth.audit import RULES, Roots, audit, read_snapshot, read_targets
from netsleuth.cli._common import (
    ExitStatus,
    add_json_option,
    add_netns_option,
    nonneg_float,
    require_root,
)
from netsleuth.errors import InvalidArgument
from netsleuth.model import Finding, Severity

__all__ = ["add_parser", "handle"]

_EPILOG = """\
Each finding names a rule, what it is about, the values read (evidence), why it
breaks connectivity and the exact fix. Rules:
{rules}

examples:
  netsleuth doctor                          this host, plus the resolv.conf of every named netns
  netsleuth doctor --netns lab1             one named namespace (as `ip netns list` shows it)
  netsleuth doctor --all-netns --json       host, every named namespace and every container
  netsleuth doctor --fail-on warning        exit 3 if anything at warning or worse is found
"""

_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def add_parser(sub: Any) -> None:
    rules = "\n".join(f"  {r.id:30} {r.title}" for r in RULES)
    parser: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="audit bridges, NAT, conntrack, MTU, resolvers and Docker on this host",
        description="Audit this host now for the known causes of sporadic container "
        "and namespace connectivity loss.",
        epilog=_EPILOG.format(rules=rules),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_netns_option(
        parser, multiple=True, help="audit this named network namespace instead of the host"
    )
    parser.add_argument(
        "--all-netns",
        action="store_true",
        help="also audit every named namespace and every running container's namespace",
    )
    parser.add_argument(
        "--fail-on",
        choices=["info", "warning", "critical"],
        help="exit with status 3 when a finding at or above this severity exists",
    )
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID",
        help="run only this rule (repeatable; ids are listed below)",
    )
    parser.add_argument(
        "--conntrack-sample",
        type=nonneg_float,
        default=0.0,
        metavar="S",
        help="read conntrack insert_failed/drop twice S seconds apart to see if they grow",
    )
    add_json_option(parser, help="print findings as a JSON list")
    # Read sysfs/procfs/etc from a fixture tree (ROOT/sys, ROOT/proc, ROOT/etc,
    # ROOT/usr/lib) without netlink or firewall programs. For tests and
    # offline inspection of a copied tree.
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def _evidence_text(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value) if value else "none"
        elif isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        else:
            shown = str(value)
        parts.append(f"{key}: {shown}")
    return "\n".join(parts)


def render(findings: list[Finding], console: Console, scope: str) -> None:
    if not findings:
        console.print(f"[green]No findings[/green] ({scope}; {len(RULES)} rules).")
        return
    for sev in (Severity.CRITICAL, Severity.WARNING, Severity.INFO):
        group = [f for f in findings if f.severity == sev]
        if not group:
            continue
        table = Table(
            title=Text(f"{sev.label.upper()} ({len(group)})", style=_STYLE[sev]),
            title_justify="left",
            show_lines=True,
            expand=True,
        )
        width = max(len(f.rule) for f in group)
        table.add_column("rule / subject", overflow="fold", min_width=width, ratio=1)
        table.add_column("finding, evidence, why, fix", ratio=3)
        for f in group:
            table.add_row(
                Text(f"{f.rule}\n{f.subject}"),
                Text(f"{f.title}\n", style="bold")
                + Text(_evidence_text(f.evidence) + "\n")
                + Text(f.why + "\n", style="dim")
                + Text("fix: ", style="bold")
                + Text(f.fix),
            )
        console.print(table)
    counts = ", ".join(
        f"{sum(1 for f in findings if f.severity == s)} {s.label}"
        for s in (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
    )
    console.print(f"{len(findings)} findings ({counts}); {scope}.")


def handle(args: argparse.Namespace) -> ExitStatus:
    known = {r.id for r in RULES}
    unknown = [r for r in args.rule if r not in known]
    if unknown:
        raise InvalidArgument(
            f"unknown rule {unknown[0]!r}; `netsleuth doctor --help` lists the rule ids"
        )
    rules = [r for r in RULES if not args.rule or r.id in args.rule]
    if args.root is not None:
        if not args.root.is_dir():
            raise InvalidArgument(f"--root {args.root} is not a directory")
        r = args.root
        roots = Roots(sys=r / "sys", proc=r / "proc", etc=r / "etc", lib=r / "usr" / "lib")
        snaps = [read_snapshot("host", roots, live=False)]
        scope = f"fixture tree {r}"
    else:
        if (args.netns or args.all_netns) and os.geteuid() != 0:
            require_root("reading another network namespace")
        snaps = read_targets(args.netns, args.all_netns, conntrack_sample=args.conntrack_sample)
        scope = ", ".join(s.netns for s in snaps)
    findings = audit(snaps, rules)
    if args.json:
        json.dump([f.to_json() for f in findings], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        render(findings, Console(), f"audited: {scope}")
    if args.fail_on:
        threshold = Severity[args.fail_on.upper()]
        if any(f.severity >= threshold for f in findings):
            return ExitStatus.FINDINGS
    return ExitStatus.OK
