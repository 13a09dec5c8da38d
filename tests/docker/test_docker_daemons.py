"""Listing dockerd processes for doctor: the pure command-line/config parser
(the one there is) and the /proc adapter on a copied tree."""

from __future__ import annotations

from pathlib import Path

from netsleuth.docker.daemons import list_daemons, parse_dockerd


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


def test_short_flags_take_attached_values_and_the_argv_is_kept() -> None:
    argv = ["dockerd", "-bbr-x", "-Hunix:///run/a.sock", "-H=tcp://127.0.0.1:2375", "-s", "vfs"]
    info = parse_dockerd(13, argv)
    assert info.argv == tuple(argv)
    assert (info.bridge, info.bridge_source, info.told_bridge) == ("br-x", "--bridge", "br-x")
    assert info.hosts == ("unix:///run/a.sock", "tcp://127.0.0.1:2375")
    assert info.storage_driver == "vfs"


def test_where_the_bridge_was_told_is_kept() -> None:
    config = {"bridge": "br-ci"}
    shown = parse_dockerd(14, ["dockerd"], config, config_shown_as="/srv/etc/daemon.json")
    assert (shown.told_bridge, shown.bridge_source) == ("br-ci", "/srv/etc/daemon.json bridge")
    plain = parse_dockerd(14, ["dockerd", "--config-file=/etc/d2.json"], config)
    assert plain.bridge_source == "/etc/d2.json bridge"
    flag = parse_dockerd(14, ["dockerd", "--bridge", "br-flag"], config)
    assert (flag.told_bridge, flag.bridge_source) == ("br-flag", "--bridge")
    none = parse_dockerd(14, ["dockerd", "--bridge=none"], config)
    assert none.bridge == "none" and none.told_bridge == "" and not none.bridge_precreated
    default = parse_dockerd(14, ["dockerd"])
    assert (default.bridge, default.bridge_source, default.told_bridge) == ("docker0", "", "")


def test_list_daemons_reads_a_copied_proc_tree(tmp_path: Path) -> None:
    proc, etc = tmp_path / "proc", tmp_path / "etc"
    for pid, argv in {
        10: b"dockerd\0-bbr-x\0",
        11: b"/usr/sbin/dockerd\0--config-file\0/etc/d2.json\0",
        12: b"containerd\0--bridge=nope\0",
        9: b"/usr/bin/dockerd\0",
    }.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(argv)
    (proc / "self").mkdir()
    (etc / "docker").mkdir(parents=True)
    (etc / "d2.json").write_text('{"bridge": "br-ci", "iptables": false}')
    (etc / "docker" / "daemon.json").write_text("not json")
    found = list_daemons(proc, etc_root=etc)
    assert [(d.pid, d.told_bridge, d.bridge_source) for d in found] == [
        (9, "", ""),
        (10, "br-x", "--bridge"),
        (11, "br-ci", f"{etc / 'd2.json'} bridge"),
    ]
    assert not found[2].iptables and found[0].iptables
    assert all(d.netns_inode is None for d in found)  # a copied tree has no ns/net
