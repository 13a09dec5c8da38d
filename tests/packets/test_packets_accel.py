"""The compiled build of the reader and matcher: in use after setup, never
used when stale, and the plain-Python modules it replaces still pass the same tests."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import netsleuth.packets.journey
import netsleuth.packets.reader
from netsleuth.packets import accel

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "netsleuth"


def copy_source(dest: Path, *, with_build: bool) -> Path:
    ignore = ["__pycache__"] if with_build else ["__pycache__", "*.so", accel.RECORD_FILE]
    shutil.copytree(SOURCE, dest / "netsleuth", ignore=shutil.ignore_patterns(*ignore))
    return dest / "netsleuth" / "packets"


def configured_names() -> list[str]:
    return sorted(p.removesuffix(".py").replace("/", ".") for p in accel.configured_modules())


def run_python(code: str, path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_setup_built_the_compiled_modules_and_they_are_in_use() -> None:
    assert accel.is_fresh(), "run scripts/setup: it compiles the reader and matcher"
    for name in configured_names():
        importlib.import_module(name)
    assert accel.compiled_modules() == configured_names()
    assert "netsleuth.packets.reader" in configured_names()
    assert netsleuth.packets.reader.__file__.endswith(".so")
    assert netsleuth.packets.journey.__file__.endswith(".so")


def files_of(package: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(package.iterdir()) if p.is_file()}


def test_a_stale_build_is_not_imported_and_the_sources_run(tmp_path: Path) -> None:
    package = copy_source(tmp_path, with_build=True)
    assert accel.is_fresh(tmp_path)
    with (package / "reader.py").open("a") as fh:
        fh.write("\nEDITED_AFTER_THE_BUILD = True\n")
    assert not accel.is_fresh(tmp_path)
    before = files_of(package)
    loaded = run_python(
        "import netsleuth.packets.reader as r, netsleuth.packets.journey as j\n"
        "from netsleuth.packets import accel\n"
        "print(r.__file__, j.__file__, r.EDITED_AFTER_THE_BUILD, accel.compiled_modules())",
        tmp_path,
    )
    assert loaded == f"{package / 'reader.py'} {package / 'journey.py'} True []"
    # importing only read: the stale build is still there, unused, until a build step
    assert files_of(package) == before
    assert list(package.glob("*.so"))


def test_the_build_step_drops_a_stale_build_and_keeps_a_fresh_one(tmp_path: Path) -> None:
    package = copy_source(tmp_path, with_build=True)
    assert not accel.drop_stale(tmp_path)
    assert accel.is_fresh(tmp_path)
    with (package / "journey.py").open("a") as fh:
        fh.write("\n# edited after the build\n")
    assert accel.drop_stale(tmp_path)
    assert not list(package.glob("*.so"))
    assert not (tmp_path / "netsleuth" / accel.RECORD_FILE).exists()


def test_a_build_without_its_record_is_not_imported(tmp_path: Path) -> None:
    package = copy_source(tmp_path, with_build=True)
    (tmp_path / "netsleuth" / accel.RECORD_FILE).unlink()
    assert not accel.is_fresh(tmp_path)
    loaded = run_python("import netsleuth.packets.reader as r; print(r.__file__)", tmp_path)
    assert loaded == str(package / "reader.py")


def test_plain_python_modules_pass_the_packet_unit_tests(tmp_path: Path) -> None:
    package = copy_source(tmp_path, with_build=False)
    loaded = run_python("import netsleuth.packets.journey as j; print(j.__file__)", tmp_path)
    assert loaded == str(package / "journey.py")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not netns and not lab",
            str(ROOT / "tests" / "packets"),
            f"--ignore={Path(__file__)}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
