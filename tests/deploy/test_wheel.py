"""The wheel is the product: built by the build hook with the compiled modules
inside, installed into a fresh venv outside the checkout, and run from there.

The wheel is built without build isolation, from the checkout venv's
hatchling and mypy (the same hook runs under ``pip wheel .`` with isolation).
The fresh venv gets the wheel alone (``--no-deps``); its third-party
dependencies are then made visible from the checkout venv by one ``.pth``
line, which adds no netsleuth of its own: a plain install of numpy, scipy and
matplotlib would take minutes here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from netsleuth import compiled
from netsleuth.packets.writer import PcapngWriter
from netsleuth_testing.frames import dns_frame

ROOT = Path(__file__).resolve().parents[2]
EXT = sysconfig.get_config_var("EXT_SUFFIX")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def build_wheel(out: Path, mode: str) -> Path:
    # the hook's work, not the C compiler's best: -O0 (the product is built at -O3)
    env = {**os.environ, "NETSLEUTH_COMPILE": mode, "MYPYC_OPT_LEVEL": "0"}
    proc = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("netsleuth-*.whl")
    return wheel


@pytest.fixture(scope="module")
def compiled_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"), "1")


def test_the_wheel_carries_every_configured_module_compiled(compiled_wheel: Path) -> None:
    assert compiled_wheel.name.endswith("-cp311-cp311-linux_x86_64.whl"), compiled_wheel.name
    names = set(zipfile.ZipFile(compiled_wheel).namelist())
    modules = compiled.configured_modules()
    assert modules
    for path in modules:
        assert path in names  # the source stays: the plain module still ships
        assert path.removesuffix(".py") + EXT in names
    record = json.loads(zipfile.ZipFile(compiled_wheel).read(f"netsleuth/{compiled.RECORD_FILE}"))
    assert record["modules"] == list(modules)
    assert not any(n.startswith(("tests/", "testing/", "hatch_build")) for n in names)
    listed = zipfile.ZipFile(compiled_wheel).namelist()
    assert len(listed) == len(names)  # no file twice


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    py = venv / "bin" / "python"
    subprocess.run(  # the checkout's pip, installing into the fresh venv
        [*PIP, "--python", py, "install", "-q", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "checkout_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def two_queries(path: Path) -> None:
    """One query answered and one never answered, seen on the client's veth."""
    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        veth = w.add_interface("veth0", "client-ns", "client")
        t0 = 1_700_000_000_000_000_000
        ask = {"src": "192.0.2.10", "dst": "192.0.2.53", "sport": 40000, "dport": 53}
        w.write(veth, t0, dns_frame(*macs, **ask, dns_id=1, qname="a.example"), outbound=True)
        back = {"src": "192.0.2.53", "dst": "192.0.2.10", "sport": 53, "dport": 40000}
        answer = dns_frame(
            macs[1], macs[0], **back, dns_id=1, qname="a.example", response=True, answer="192.0.2.1"
        )
        w.write(veth, t0 + 2_000_000, answer, outbound=False)
        lost = dns_frame(*macs, **{**ask, "sport": 40001}, dns_id=2, qname="b.example")
        w.write(veth, t0 + 10_000_000, lost, outbound=True)


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(
        [venv / "bin" / "netsleuth", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_installed_wheel_runs_outside_the_checkout_with_compiled_modules(
    compiled_wheel: Path, tmp_path: Path
) -> None:
    venv = fresh_venv(tmp_path, compiled_wheel)
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import netsleuth; print(netsleuth.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where

    version = run(venv, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    full = sorted(compiled.module_name(p) for p in compiled.configured_modules())
    names = [name.rpartition(".")[2] for name in full]
    assert f"compiled modules in use: {', '.join(names)}" in version.stdout, version.stdout
    assert "features: tracefs " in version.stdout

    doctor = run(venv, "doctor", "--json", cwd=tmp_path)
    assert doctor.returncode in (0, 3), doctor.stderr  # 3: findings at --fail-on
    assert isinstance(json.loads(doctor.stdout), list)

    capture = tmp_path / "two.pcapng"
    two_queries(capture)
    explained = run(venv, "explain", "--json", str(capture), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    out = json.loads(explained.stdout)
    assert (out["read"]["dns"], out["journeys"]) == (3, 2)
    assert (out["verdicts"]["answered"], out["verdicts"]["unanswered"]) == (1, 1)
    assert [q["qname"] for q in out["queries"]] == ["b.example."]  # the failed one, named

    deps = run(venv, "check-deps", "--json", "explain", cwd=tmp_path)
    assert deps.returncode == 0, deps.stderr
    assert json.loads(deps.stdout)["version"]["compiled"] == full


def test_without_a_compiler_the_wheel_is_plain_python(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "0")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith(".so")]
    assert f"netsleuth/{compiled.RECORD_FILE}" not in names
    assert "netsleuth/packets/reader.py" in names
