"""Modules compiled with mypyc, and the guard that a stale build never runs.

Some hot modules (the packet reader and the journey matcher of ``explain``)
are plain, type-checked Python that mypyc (part of mypy) can compile into
extension modules placed next to their sources; Python then imports those in
place of the ``.py`` files (``explain`` runs about 1.3x faster,
``bench/bench_explain.py`` measures both). Without a C compiler nothing
changes but speed.

Which modules are compiled is said in one place, ``compiled-modules`` in the
build hook's table of ``pyproject.toml``
(``[tool.hatch.build.targets.wheel.hooks.custom]``), read by both builds:

- a wheel: the build hook (``hatch_build.py``) calls :func:`compile_modules`
  on a scratch copy of the sources and puts the extension modules and their
  build record into the wheel;
- the editable install of a checkout: :func:`build` (``scripts/setup``, through
  ``netsleuth.packets.accel.main(["--if-stale"])``) puts them next to the sources.

A compiled module must never run for a source it was not built from, so
every build leaves a record (:data:`RECORD_FILE`, in the ``netsleuth``
package directory): the modules it compiled and a digest of their sources.
Importing :mod:`netsleuth` imports this module, which compares that digest
with the sources (it only reads) and, when they differ or no record names
an extension module found, puts a finder first on ``sys.meta_path`` that
imports those modules from their ``.py`` files (:func:`install_guard`):
edited code always runs as written. A stale build is deleted only by the
build step. Standard library only: the build hook loads this file by path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = [
    "RECORD_FILE",
    "build",
    "can_compile",
    "compile_modules",
    "compiled_modules",
    "configured_modules",
    "drop_stale",
    "install_guard",
    "is_fresh",
    "module_name",
    "recorded_modules",
    "stale_modules",
]

SRC_ROOT = Path(__file__).resolve().parent.parent  # the directory holding the netsleuth package
PROJECT_CONFIG = SRC_ROOT.parent / "pyproject.toml"  # in a source checkout
RECORD_FILE = ".compiled-build.json"
HOOK_TABLE = ("tool", "hatch", "build", "targets", "wheel", "hooks", "custom")
EXT = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def module_name(path: str) -> str:
    """``netsleuth/packets/reader.py`` -> ``netsleuth.packets.reader``; only
    plain modules of the ``netsleuth`` package can be compiled."""
    parts = path.split("/")
    if (
        len(parts) < 2
        or parts[0] != "netsleuth"
        or not parts[-1].endswith(".py")
        or parts[-1] == "__init__.py"
        or not all(p.isidentifier() for p in [*parts[:-1], parts[-1][:-3]])
    ):
        raise ValueError(f"compiled-modules: {path!r} is not a module file of netsleuth")
    return ".".join([*parts[:-1], parts[-1][:-3]])


def configured_modules(project_config: Path = PROJECT_CONFIG) -> tuple[str, ...]:
    """The module files ``pyproject.toml`` says to compile, relative to ``src``."""
    import tomllib

    table: object = tomllib.loads(project_config.read_text())
    for key in HOOK_TABLE:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    paths = table.get("compiled-modules", []) if isinstance(table, dict) else []
    out = tuple(str(p) for p in paths)
    for path in out:
        module_name(path)
    return out


def _digest(src_root: Path, paths: Sequence[str]) -> str:
    """Of the sources of ``paths`` and of the interpreter ABI they run on."""
    h = hashlib.sha256(EXT.encode())
    for path in paths:
        h.update(f"\0{path}\0".encode())
        h.update((src_root / path).read_bytes())
    return h.hexdigest()


def record_text(src_root: Path, paths: Sequence[str]) -> str:
    """A build record for ``paths`` (relative to ``src_root``) as built now."""
    return json.dumps({"modules": list(paths), "digest": _digest(src_root, paths)}) + "\n"


def _record(src_root: Path) -> tuple[tuple[str, ...], str]:
    try:
        data = json.loads((src_root / "netsleuth" / RECORD_FILE).read_text())
        return tuple(str(m) for m in data["modules"]), str(data["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return (), ""


def recorded_modules(src_root: Path = SRC_ROOT) -> tuple[str, ...]:
    """The module files the build record names (none without a record)."""
    return _record(src_root)[0]


def _artifacts_of(src_root: Path, path: str) -> list[Path]:
    """A module's extension module and its mypyc runtime, as built."""
    source = src_root / path
    stem = source.name.removesuffix(".py")
    return sorted(
        p
        for p in (source.with_name(stem + EXT), source.with_name(f"{stem}__mypyc{EXT}"))
        if p.is_file()
    )


def _built(src_root: Path) -> dict[str, list[Path]]:
    """Every module file with an extension module next to it, and those files."""
    out: dict[str, list[Path]] = {}
    for ext in (src_root / "netsleuth").rglob(f"*{EXT}"):
        stem = ext.name.split(".")[0].removesuffix("__mypyc")
        source = ext.parent / f"{stem}.py"
        if source.is_file():
            out.setdefault(source.relative_to(src_root).as_posix(), []).append(ext)
    return out


def is_fresh(src_root: Path = SRC_ROOT) -> bool:
    """True when compiled modules exist, the build record names every one of
    them, each it names is built, and its digest is that of the sources."""
    modules, digest = _record(src_root)
    if not modules:
        return False
    built = _built(src_root)
    if not built or not set(built) <= set(modules) or not all(p in built for p in modules):
        return False
    try:
        return digest == _digest(src_root, modules)
    except OSError:
        return False


def stale_modules(src_root: Path = SRC_ROOT) -> list[str]:
    """Module names whose extension modules must not be imported."""
    built = _built(src_root)
    if not built or is_fresh(src_root):
        return []
    return sorted(module_name(p) for p in built)


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Imports the named modules from their ``.py`` files, never compiled."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install_guard(src_root: Path = SRC_ROOT) -> list[str]:
    """When the extension modules under ``src_root`` are stale, make every
    later import of their modules load the sources. Reads only; returns the
    module names it redirects (none when the build is fresh or absent)."""
    stale = stale_modules(src_root)
    if stale:
        sources = {name: src_root / (name.replace(".", "/") + ".py") for name in stale}
        sys.meta_path.insert(0, _SourcesFirst(sources))
    return stale


def drop_stale(src_root: Path = SRC_ROOT) -> bool:
    """Delete compiled modules that do not match their sources; True if any
    were. Only the build step calls it."""
    built = _built(src_root)
    if not built or is_fresh(src_root):
        return False
    for files in built.values():
        for path in files:
            path.unlink(missing_ok=True)
    (src_root / "netsleuth" / RECORD_FILE).unlink(missing_ok=True)
    return True


def compiled_modules() -> list[str]:
    """Names of netsleuth's modules that run compiled in this process."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("netsleuth.")
        and not name.endswith("__mypyc")  # the runtime library of a compiled module
        and str(getattr(module, "__file__", "")).endswith(EXT)
    )


def can_compile() -> str:
    """Why no extension module can be built here ("" when one can): a C
    compiler and the interpreter's headers are needed."""
    cc = os.environ.get("CC", "").split()
    if not (cc and shutil.which(cc[0])) and not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (install gcc)"
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").is_file():
        return f"no Python headers in {include} (install python3-dev)"
    return ""


def compile_modules(
    src_root: Path, paths: Sequence[str], work: Path, config: Path | None = None
) -> list[Path]:
    """Compile ``paths`` (module files relative to ``src_root``) with mypyc in
    a copy of the ``netsleuth`` package made in ``work``; returns the extension
    modules built there (at the same relative places) and their build record,
    ``work/netsleuth/RECORD_FILE``. ``config``: the project's mypy settings.
    Raises RuntimeError with the reason when it cannot."""
    why = can_compile() or ("" if paths else "no modules to compile")
    if why:
        raise RuntimeError(why)
    shutil.copytree(
        src_root / "netsleuth",
        work / "netsleuth",
        ignore=shutil.ignore_patterns("__pycache__", f"*{EXT}", RECORD_FILE),
    )
    # The project's mypy settings, errors of the modules only imported left to
    # the type check (a build does not fail on them), and no PYTHONPATH: what
    # mypyc sees must not depend on the caller's environment.
    argv = [sys.executable, "-m", "mypyc", "--follow-imports=silent"]
    if config is not None and config.is_file():
        argv += ["--config-file", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for path in paths:  # one extension per module: no shared library outside the package
        proc = subprocess.run(
            [*argv, path], cwd=work, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mypyc failed on {path}:\n{proc.stdout}{proc.stderr}")
    record = work / "netsleuth" / RECORD_FILE
    record.write_text(record_text(work, paths))
    return [*(p for path in paths for p in _artifacts_of(work, path)), record]


def build(src_root: Path = SRC_ROOT, paths: Sequence[str] | None = None) -> list[Path]:
    """Compile the configured modules in a scratch copy of the source tree and
    install the extension modules and their record next to their sources."""
    if paths is None:
        paths = configured_modules()
    with tempfile.TemporaryDirectory(prefix="netsleuth-compile-") as tmp:
        built = compile_modules(src_root, paths, Path(tmp), PROJECT_CONFIG)
        for files in _built(src_root).values():
            for old in files:
                old.unlink()
        return [Path(shutil.copy2(p, src_root / p.relative_to(tmp))) for p in built]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="netsleuth.packets.accel",
        description="Compile the modules pyproject.toml lists (compiled-modules) with mypyc, "
        "next to their sources (the editable install of a checkout).",
    )
    parser.add_argument("--if-stale", action="store_true", help="build only when out of date")
    parser.add_argument("--status", action="store_true", help="say whether a fresh build exists")
    args = parser.parse_args(argv)
    if args.status:
        print("compiled" if is_fresh() else "not compiled (plain Python)")
        return 0
    wanted = configured_modules()
    if args.if_stale and is_fresh() and set(recorded_modules()) == set(wanted):
        return 0
    drop_stale()
    try:
        installed = build(paths=wanted)
    except RuntimeError as exc:
        print(f"compile: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(module_name(p).rpartition(".")[2] for p in wanted)
    print(f"compile: compiled {names} ({len(installed) - 1} extension modules)")
    return 0


if __name__ == "netsleuth.compiled":  # not when the wheel's build hook loads this file
    install_guard()
