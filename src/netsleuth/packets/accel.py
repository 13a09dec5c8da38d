"""A compiled build of the two hot modules of ``explain``, and its guard.

``reader`` and ``journey`` are plain, type-checked Python. ``build()``
compiles them with mypyc (part of mypy) into extension modules placed next to
their sources, which Python then imports instead of the ``.py`` files:
``explain`` runs about 1.3x faster (``bench/bench_explain.py`` measures both).
``scripts/setup`` builds them; without a C compiler nothing changes but speed.

A compiled module must never run for a source it was not built from, so the
build records a digest of the sources. Importing :mod:`netsleuth.packets`
imports this module first, which compares that digest with the sources (it
only reads) and, when they differ, loads the ``.py`` files in place of the
extension modules (:func:`load_sources_if_stale`): edited code always runs as
written. A stale build is deleted only by the build step.

Run ``main`` with ``--if-stale`` to build only when out of date (removing a
stale build first, so a failed build leaves none behind), or ``--status`` to
ask.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

__all__ = [
    "COMPILED",
    "build",
    "compiled_modules",
    "drop_stale",
    "is_fresh",
    "load_sources_if_stale",
]

# modules of this package compiled by build(); neither imports the other
COMPILED = ("reader", "journey")
PACKAGE = __name__.rpartition(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_CONFIG = PACKAGE_DIR.parents[2] / "pyproject.toml"  # in a source checkout
DIGEST_FILE = ".accel-digest"
_EXT = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def _digest(package_dir: Path) -> str:
    h = hashlib.sha256(sys.version.encode())
    for name in COMPILED:
        h.update((package_dir / f"{name}.py").read_bytes())
    return h.hexdigest()


def _artifacts(package_dir: Path) -> list[Path]:
    """The extension modules a build leaves (each module and its mypyc runtime)."""
    return sorted(p for name in COMPILED for p in package_dir.glob(f"{name}*{_EXT}"))


def is_fresh(package_dir: Path = PACKAGE_DIR) -> bool:
    """True when compiled modules exist and were built from the current sources."""
    recorded = package_dir / DIGEST_FILE
    try:
        return bool(_artifacts(package_dir)) and recorded.read_text().strip() == _digest(
            package_dir
        )
    except OSError:
        return False


def load_sources_if_stale(package_dir: Path = PACKAGE_DIR) -> bool:
    """When the compiled modules next to the sources were built from other
    sources, import the ``.py`` files of :data:`COMPILED` now, so that every
    later ``import`` of them gets the sources. Reads only; True if it did."""
    if not _artifacts(package_dir) or is_fresh(package_dir):
        return False
    parent = sys.modules[PACKAGE]
    for name in COMPILED:
        fullname = f"{PACKAGE}.{name}"
        if fullname in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(fullname, package_dir / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[fullname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[fullname]
            raise
        setattr(parent, name, module)
    return True


def drop_stale(package_dir: Path = PACKAGE_DIR) -> bool:
    """Delete compiled modules that do not match their sources; True if any
    were. Only the build step (:func:`main`) calls it."""
    artifacts = _artifacts(package_dir)
    if not artifacts or is_fresh(package_dir):
        return False
    for path in [*artifacts, package_dir / DIGEST_FILE]:
        path.unlink(missing_ok=True)
    return True


def compiled_modules() -> list[str]:
    """Names of this package's modules that run compiled in this process."""
    out = []
    for name in COMPILED:
        module = sys.modules.get(f"netsleuth.packets.{name}")
        if module is not None and str(getattr(module, "__file__", "")).endswith(_EXT):
            out.append(name)
    return out


def build(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Compile :data:`COMPILED` with mypyc in a scratch copy of the source tree
    and install the extension modules next to their sources."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        raise RuntimeError("no C compiler: install gcc (scripts/setup does)")
    src_root = package_dir.parent.parent  # the directory holding the netsleuth package
    with tempfile.TemporaryDirectory(prefix="netsleuth-accel-") as tmp:
        work = Path(tmp)
        shutil.copytree(
            src_root / "netsleuth",
            work / "netsleuth",
            ignore=shutil.ignore_patterns("__pycache__", f"*{_EXT}", DIGEST_FILE),
        )
        digest = _digest(work / "netsleuth" / "packets")
        # the project's mypy settings (third-party modules without stubs), and no
        # PYTHONPATH: what mypyc sees must not depend on the caller's environment
        argv = [sys.executable, "-m", "mypyc"]
        if PROJECT_CONFIG.is_file():
            argv += ["--config-file", str(PROJECT_CONFIG)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for name in COMPILED:  # one extension per module: no shared library outside the package
            proc = subprocess.run(
                [*argv, f"netsleuth/packets/{name}.py"],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"mypyc failed on {name}.py:\n{proc.stdout}{proc.stderr}")
        for old in _artifacts(package_dir):
            old.unlink()
        built = _artifacts(work / "netsleuth" / "packets")
        installed = [Path(shutil.copy2(p, package_dir / p.name)) for p in built]
    (package_dir / DIGEST_FILE).write_text(digest + "\n")
    return installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="netsleuth.packets.accel",
        description="Compile the capture reader and journey matcher with mypyc.",
    )
    parser.add_argument("--if-stale", action="store_true", help="build only when out of date")
    parser.add_argument("--status", action="store_true", help="say whether a fresh build exists")
    args = parser.parse_args(argv)
    if args.status:
        print("compiled" if is_fresh() else "not compiled (plain Python)")
        return 0
    if args.if_stale and is_fresh():
        return 0
    drop_stale()
    try:
        installed = build()
    except RuntimeError as exc:
        print(f"accel: {exc}", file=sys.stderr)
        return 1
    print(f"accel: compiled {', '.join(COMPILED)} ({len(installed)} extension modules)")
    return 0


load_sources_if_stale()  # netsleuth.packets imports this module before reader and journey
