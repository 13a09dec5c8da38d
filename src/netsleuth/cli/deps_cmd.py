"""`netsleuth check-deps` (also `doctor --self` in spirit): what each command
needs from this system, what is here, and the Debian package of what is not.
Also the text of `netsleuth --version`."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Any

from netsleuth import __version__
from netsleuth.cli._common import ExitStatus, add_json_option
from netsleuth.deps import COMMANDS, DEPENDENCIES, Status, kernel_features, status_of
from netsleuth.errors import InvalidArgument

__all__ = ["add_parser", "check_report", "version_info", "version_text"]

_DESCRIPTION = """\
List, for every command, the system programs and kernel features it uses,
whether each is present here, and the Debian package (or kernel setting)
that provides a missing one. "required": the command refuses to start
without it (and says so in one line); "optional": the command runs and
leaves out the part named.

Exit status: 0 when every required dependency of the commands checked is
present, 1 when one is missing (so a provisioning step can gate on it).
Nothing is started or installed; scripts/setup installs every package."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check-deps",
        help="which system programs and kernel features each command needs, and what is missing",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "commands",
        nargs="*",
        metavar="COMMAND",
        help=f"only these commands ({', '.join(COMMANDS)}; default: all)",
    )
    add_json_option(p, help="print the table as JSON")
    p.set_defaults(handler=_check_deps)


def compiled_in_use() -> list[str]:
    """The compiled modules this process imports (importing them to see)."""
    from netsleuth import compiled

    names = [compiled.module_name(p) for p in compiled.recorded_modules()]
    for name in names:
        importlib.import_module(name)
    return compiled.compiled_modules()


def version_info() -> dict[str, Any]:
    features = kernel_features()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "compiled": compiled_in_use(),
        "features": {
            name: {"present": s.present, "where": s.where} for name, s in features.items()
        },
    }


def version_text() -> str:
    info = version_info()
    compiled = info["compiled"]
    speed = (
        f"compiled modules in use: {', '.join(m.rpartition('.')[2] for m in compiled)}"
        if compiled
        else "plain Python (no compiled modules in use)"
    )
    found = ", ".join(
        f"{name} {'yes' if f['present'] else 'no'}" for name, f in info["features"].items()
    )
    return f"netsleuth {info['version']} (Python {info['python']}; {speed})\nfeatures: {found}"


def check_report(commands: list[str], statuses: dict[str, Status]) -> dict[str, Any]:
    """The check-deps table as data: per command, each use and its status."""
    out: dict[str, Any] = {"commands": {}, "missing_required": []}
    for command in commands:
        rows = []
        for use in COMMANDS[command]:
            dep = DEPENDENCIES[use.dependency]
            st = statuses[use.dependency]
            rows.append(
                {
                    "name": dep.name,
                    "kind": dep.kind,
                    "required": use.required,
                    "for": use.what,
                    "present": st.present,
                    "where": st.where,
                    "package": dep.package or None,
                    "how": dep.how or None,
                }
            )
            if use.required and not st.present:
                out["missing_required"].append(f"{command}: {dep.name}")
        out["commands"][command] = rows
    return out


def _text(report: dict[str, Any]) -> str:
    lines = []
    for command, rows in report["commands"].items():
        lines.append(f"netsleuth {command}" + ("" if rows else ": nothing outside Python"))
        for r in rows:
            mark = "ok     " if r["present"] else "MISSING"
            need = "required" if r["required"] else "optional"
            fix = ""
            if not r["present"]:
                fix = f"  -> apt-get install {r['package']}" if r["package"] else f"  -> {r['how']}"
                if r["kind"] == "kernel" and r["package"]:
                    fix = f"  -> {r['how']}"
            lines.append(f"  {mark} {r['name']:<14} {need}  {r['for']}{fix}")
    missing = report["missing_required"]
    lines.append(
        "every required dependency is present"
        if not missing
        else f"missing, required: {', '.join(missing)}"
    )
    return "\n".join(lines)


def _check_deps(args: argparse.Namespace) -> ExitStatus:
    commands = list(args.commands) or list(COMMANDS)
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        raise InvalidArgument(f"no command {unknown[0]!r}; choose from {', '.join(COMMANDS)}")
    names = sorted({u.dependency for c in commands for u in COMMANDS[c]})
    report = check_report(commands, status_of(names) if names else {})
    if args.json:
        report["version"] = version_info()
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    return ExitStatus.ERROR if report["missing_required"] else ExitStatus.OK
