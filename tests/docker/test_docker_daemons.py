"""Listing dockerd processes for doctor: the pure command-line/config parser."""

from __future__ import annotations

from netsleuth.docker.daemons import parse_dockerd


def test_default_daemon_owns_docker0_and_writes_rules() -> None:
    info = parse_dockerd(10, ["/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/c.sock"])
    assert info.hosts == ("fd://",)
    assert info.bridge == "docker0" and not info.bridge_precreated
    assert info.iptables and info.ip_forward and info.ip_masq
    assert info.data_root == "/var/lib/docker"
    assert info.config_file == "/etc/docker/daemon.json"


def test_second_daemon_on_a_precreated_bridge_like_the_reference() -> None:
    argv = [
        "dockerd", "--bridge=ci-br0", "--iptables=false", "--ip-masq", "false-not-a-flag",
        "--host", "unix:///run/ci-docker.sock", "-H=tcp://127.0.0.1:2375",
        "--data-root", "/srv/ci-docker", "--exec-root=/run/ci-docker", "--ip-forward=0",
    ]  # fmt: skip
    info = parse_dockerd(11, argv, netns_inode=4026531840)
    assert info.hosts == ("unix:///run/ci-docker.sock", "tcp://127.0.0.1:2375")
    assert info.bridge == "ci-br0" and info.bridge_precreated
    assert not info.iptables
    assert info.ip_masq  # a bare boolean flag means true
    assert not info.ip_forward
    assert (info.data_root, info.exec_root) == ("/srv/ci-docker", "/run/ci-docker")
    assert info.netns_inode == 4026531840


def test_flags_win_over_the_config_file_which_wins_over_defaults() -> None:
    config = {"bridge": "br-ci", "iptables": False, "hosts": ["unix:///run/x.sock"]}
    from_config = parse_dockerd(12, ["dockerd"], config)
    assert from_config.bridge == "br-ci" and not from_config.iptables
    assert from_config.hosts == ("unix:///run/x.sock",)
    overridden = parse_dockerd(12, ["dockerd", "-b", "none", "--iptables=true"], config)
    assert overridden.bridge == "none" and not overridden.bridge_precreated
    assert overridden.iptables
