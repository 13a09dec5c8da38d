"""The container image of scripts/build-image: its pure decisions, that the
DaemonSet names exactly the image it builds, and (marker ``docker``) the image
itself in a throwaway dockerd, run as the DaemonSet runs it: host network,
host PID, no privileges but the DaemonSet's capabilities, read-only root."""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from netsleuth import netns
from netsleuth.docker import DockerDaemon
from netsleuth.store import Store

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-image"
DAEMONSET = ROOT / "deploy" / "kubernetes" / "daemonset.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TAG = f"netsleuth:{VERSION}"
DNS_ADDR = "198.18.44.1"  # the bridge address of the bridge_ns fixture
DNS_NAME = "probe.image.test"
DNS_ANSWER = "198.18.44.9"


def build_image_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("build_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader("build_image", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_image", module)  # dataclasses look their module up
    loader.exec_module(module)
    return module


def watch_container() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(DAEMONSET.read_text()))
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    return {"pod": ds["spec"]["template"]["spec"], "container": container}


# -- pure ------------------------------------------------------------------------


def test_apt_simulation_is_parsed_into_exact_versions() -> None:
    m = build_image_module()
    text = (
        "NOTE: This is only a simulation!\n"
        "Inst libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])\n"
        "Inst libgmp10 (2:6.2.1+dfsg1-1.1 Debian:12.11/stable [amd64])\n"
        "Inst tzdata [2024a-0] (2025b-0+deb12u1 Debian:12.11/stable [all])\n"
        "Conf libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])\n"
    )
    got = m.parse_simulation(text)
    assert [str(p) for p in got] == [
        "libc6 2.36-9+deb12u14 amd64",
        "libgmp10 2:6.2.1+dfsg1-1.1 amd64",
        "tzdata 2025b-0+deb12u1 all",
    ]
    assert got[1].filename == "libgmp10_2%3a6.2.1+dfsg1-1.1_amd64.deb"


def test_platform_tags_cover_every_older_glibc() -> None:
    m = build_image_module()
    tags = m.manylinux_platforms((2, 36))
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags
    assert {"manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(tags)
    assert "manylinux2014_x86_64" not in m.manylinux_platforms((2, 12))


def test_pins_come_from_the_tested_environment_only() -> None:
    m = build_image_module()
    freeze = (
        "numpy==2.4.6\n# Editable install\n-e /src/netsleuth\nnetsleuth==0.1.0\n"
        "foo @ file:///x.whl\nPyYAML==6.0.4\n"
    )
    assert m.pinned_requirements(freeze) == "numpy==2.4.6\nPyYAML==6.0.4\n"


def test_daemonset_names_exactly_the_image_the_script_builds() -> None:
    m = build_image_module()
    assert m.default_tag(ROOT / "pyproject.toml") == TAG
    container = watch_container()["container"]
    assert container["image"] == TAG
    assert container["imagePullPolicy"] in ("IfNotPresent", "Never")  # no registry has it
    changes = m.image_changes(VERSION, "k")
    assert 'ENTRYPOINT ["/opt/netsleuth/bin/netsleuth"]' in changes
    assert "scripts/build-image" in DAEMONSET.read_text()


# -- the image in a real dockerd -------------------------------------------------


@contextlib.contextmanager
def dnsmasq(ns: str) -> Iterator[None]:
    """A DNS server in ``ns`` on the bridge address that answers DNS_NAME."""
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", "--bind-interfaces", f"--listen-address={DNS_ADDR}",
        f"--address=/{DNS_NAME}/{DNS_ANSWER}", "--user=root", "--pid-file",
        "--log-facility=/dev/null",
    ]  # fmt: skip
    proc = subprocess.Popen(
        netns.exec_argv(ns, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_like_the_daemonset(client: Any, argv: list[str], state: Path) -> tuple[int, str, str]:
    """Run the image with the DaemonSet's pod and security settings."""
    spec = watch_container()
    pod, container = spec["pod"], spec["container"]
    sec = container["securityContext"]
    assert pod["hostNetwork"] and pod["hostPID"]
    assert not sec["privileged"] and sec["readOnlyRootFilesystem"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"netns", "state", "tmp"}
    security_opt = []
    if sec.get("appArmorProfile", {}).get("type") == "Unconfined":
        security_opt.append("apparmor=unconfined")
    if not sec["allowPrivilegeEscalation"]:
        security_opt.append("no-new-privileges")
    run = client.containers.run(
        TAG,
        argv,
        detach=True,
        network_mode="host",
        pid_mode="host",
        privileged=False,
        user=str(sec["runAsUser"]),
        cap_drop=sec["capabilities"]["drop"],
        cap_add=sec["capabilities"]["add"],
        security_opt=security_opt,  # seccomp: the engine's default (RuntimeDefault)
        read_only=True,
        volumes={
            "/run/netns": {"bind": mounts["netns"]["mountPath"], "mode": "ro,rslave"},
            str(state): {"bind": mounts["state"]["mountPath"], "mode": "rw"},
        },
        tmpfs={mounts["tmp"]["mountPath"]: "size=16m"},
    )
    try:
        status = run.wait(timeout=120)["StatusCode"]
        out = run.logs(stdout=True, stderr=False).decode()
        err = run.logs(stdout=False, stderr=True).decode()
    finally:
        run.remove(force=True)
    return int(status), out, err


@pytest.mark.docker
@pytest.mark.timeout(1500)  # a build from scratch; scripts/setup leaves it cached
def test_image_runs_doctor_and_watch_as_the_daemonset(bridge_ns: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with DockerDaemon(bridge_ns, "br0", fixed_cidr="198.18.44.128/25") as daemon:
        built = subprocess.run(
            [str(SCRIPT), "--docker-host", daemon.host, "--json"],
            capture_output=True, text=True, timeout=1400, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr[-2000:]
        result = json.loads(built.stdout)
        assert result["tag"] == TAG and result["loaded"]
        print(  # the figures, with -s or -rP
            f"{TAG}: {result['image_bytes'] / 1e6:.0f} MB, build-image took "
            f"{result['seconds']} s (rebuilt: {result['rebuilt']})"
        )
        with contextlib.closing(daemon.client(timeout=120)) as client:
            image = client.images.get(TAG)
            assert image.attrs["Config"]["Entrypoint"] == ["/opt/netsleuth/bin/netsleuth"]
            assert image.labels["org.netsleuth.build"] == result["build"]

            status, out, err = run_like_the_daemonset(client, ["doctor", "--json"], state)
            assert status == 0, err
            findings = json.loads(out)
            assert isinstance(findings, list)
            # It audited the namespace it shares (the daemon's "host"): its bridge.
            assert any("br0" in json.dumps(f) for f in findings), findings

            with dnsmasq(bridge_ns):
                argv = [
                    "watch", "--duration", "3", "--target", "host", "--json", "--quiet",
                    "--probe", f"dns:{DNS_ADDR}/{DNS_NAME}",
                    "--store", "/var/lib/netsleuth/watch.sqlite",
                ]  # fmt: skip
                status, out, err = run_like_the_daemonset(client, argv, state)
    assert status == 0, err
    summary = json.loads(out)
    (series,) = [s for s in summary["series"] if s["probe"].startswith("dns:")]
    assert series["target"] == "host"
    assert series["attempts"] >= 2
    assert series["failed"] == 0, series
    assert series["outcomes"] == {"ok": series["attempts"]}
    with Store(state / "watch.sqlite") as store:
        stored = len(store.probe_columns())
    assert stored >= series["attempts"]
