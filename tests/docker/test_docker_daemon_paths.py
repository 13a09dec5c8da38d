"""Pure parts of the throwaway daemon: its paths, its command line, and where
containerd puts shim sockets (checked against a value seen on containerd 1.6)."""

from __future__ import annotations

from pathlib import Path

from netsleuth.docker import daemon_paths, dockerd_argv
from netsleuth.docker.daemon import _alive, _mounts_under, shim_socket


def test_paths_are_a_function_of_the_id() -> None:
    p = daemon_paths("ab12cd", Path("/run/x"), Path("/var/lib/x"))
    assert p.state_dir == Path("/run/x/ab12cd")
    assert p.data_root == Path("/var/lib/x/ab12cd")
    assert p.exec_root == Path("/run/x/ab12cd/exec")
    assert p.host == "unix:///run/x/ab12cd/docker.sock"
    assert p.containerd_socket == Path("/run/x/ab12cd/exec/containerd/containerd.sock")
    assert p.cgroup_parent == "netsleuth-docker-ab12cd"
    # unix socket paths must stay under 108 bytes with the default roots
    assert len(str(daemon_paths("ab12cd").containerd_socket)) < 100


def test_argv_has_no_firewall_forwarding_or_masquerading_and_own_roots() -> None:
    p = daemon_paths("ab12cd", Path("/run/x"), Path("/var/lib/x"))
    argv = dockerd_argv(
        "/usr/sbin/dockerd", p, "labbr0", "overlay2", fixed_cidr="198.18.0.128/25",
        dns=["198.18.255.2"],
    )  # fmt: skip
    assert argv[0] == "/usr/sbin/dockerd"
    for flag in (
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--bridge=labbr0",
        "--storage-driver=overlay2",
        "--data-root=/var/lib/x/ab12cd",
        "--exec-root=/run/x/ab12cd/exec",
        "--pidfile=/run/x/ab12cd/docker.pid",
        "--host=unix:///run/x/ab12cd/docker.sock",
        "--config-file=/run/x/ab12cd/daemon.json",
        "--cgroup-parent=/netsleuth-docker-ab12cd",
        "--fixed-cidr=198.18.0.128/25",
        "--dns=198.18.255.2",
    ):
        assert flag in argv
    assert not any(a.startswith("--bip") for a in argv)


def test_shim_socket_matches_containerd() -> None:
    # Seen on containerd 1.6.20 (Debian 12) under daemon "ab12cd": the shim of
    # container 3a2078... listened on /run/containerd/s/7ce65f...
    got = shim_socket(
        daemon_paths("ab12cd").containerd_socket,
        "3a2078fc25dcd2900a45fe1e426bdb063d4668fb6802021858c570e0352d5e53",
    )
    assert got == Path(
        "/run/containerd/s/7ce65feb716bb6bd8dbbfdcce534fc5ba3feb3151f3a3b2a5206c8d9d7e74956"
    )


def test_alive_rejects_zombies_and_reused_pids(tmp_path: Path) -> None:
    def stat(pid: int, state: str, start: int) -> None:
        (tmp_path / str(pid)).mkdir()
        rest = " ".join(["0"] * 18 + [str(start)] + ["0"] * 5)
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (dock erd) {state} {rest}\n")

    stat(10, "S", 500)
    stat(11, "Z", 500)
    assert _alive(10, 500, tmp_path)
    assert _alive(10, None, tmp_path)
    assert not _alive(10, 501, tmp_path)  # same PID, another process
    assert not _alive(11, 500, tmp_path)
    assert not _alive(12, None, tmp_path)


def test_mounts_under_lists_deepest_first(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "80 27 0:50 / /var/lib/x/ab12cd/overlay2/l1/merged rw - overlay overlay rw\n"
        "81 27 0:4 net:[1] /run/x/ab12cd/exec/netns/c1 rw - nsfs nsfs rw\n"
        "82 27 0:51 / /var/lib/x/ab12cdef/merged rw - overlay overlay rw\n"
        "83 27 0:52 / /run/x/ab12cd\\040b rw - tmpfs tmpfs rw\n"
    )
    got = _mounts_under([Path("/run/x/ab12cd"), Path("/var/lib/x/ab12cd")], info)
    assert got == [
        "/var/lib/x/ab12cd/overlay2/l1/merged",
        "/run/x/ab12cd/exec/netns/c1",
    ]
