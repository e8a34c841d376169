"""The lab tool's address plan and /etc/hosts blocks (lab/network.py, lab/etchosts.py): no
container engine needed."""

import multiprocessing
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lab import cli, etchosts, network  # noqa: E402
from lab.engine import LabError  # noqa: E402
from lab.platform import create_args  # noqa: E402


def hosts_v4():
    return [network.host_spec("pg1", "debian12", "172.30.10.31", "172.30.20.31", mgmt_name="pg1.mgmt.hslab"),
            network.host_spec("lb1", "debian12", "172.30.10.10", ["172.30.20.10"])]


def test_names_and_subnets():
    h = hosts_v4()
    assert h[0]["mgmt_name"] == "pg1.mgmt.hslab" and h[1]["cluster_name"] == "lb1.cluster.hslab"
    nets = network.subnets(h)
    assert (str(nets["management"]), str(nets["cluster_v4"]), nets["cluster_v6"]) == \
        ("172.30.10.0/24", "172.30.20.0/24", None)
    assert network.cluster_network("hs-postgres") == "hs-postgres-cluster"


def test_ipv6_derived_and_ipv6_only_cluster():
    assert network.derived_ipv6("172.30.20.31") == "fd00:172:30:20::31"
    h = network.host_spec("pg1", "debian12", "172.30.10.31", "172.30.20.31", ipv6=True)
    assert h["cluster"] == ["172.30.20.31", "fd00:172:30:20::31"]
    # IPv6-only cluster addresses: Docker still wants an IPv4 subnet (management /24 + 10).
    only6 = [network.host_spec("pg-1", "debian12", "172.30.25.11", "[fd00:172:30:35::11]")]
    nets = network.subnets(only6)
    assert (str(nets["cluster_v4"]), str(nets["cluster_v6"])) == ("172.30.35.0/24", "fd00:172:30:35::/64")


@pytest.mark.parametrize("mgmt, cluster, message", [
    ("pg1.example", "172.30.20.31", "not an IP literal"),
    ("172.30.10.31", "pg1.cluster.example", "not an IP literal"),
    ("172.30.10.31", [], "empty"),
    ("fd00::31", "172.30.20.31", "one IPv4 literal"),
])
def test_bad_addresses(mgmt, cluster, message):
    with pytest.raises(LabError, match=message):
        network.host_spec("pg1", "debian12", mgmt, cluster)


@pytest.mark.parametrize("second, message", [
    (("172.30.11.10", "172.30.20.10"), "management addresses .* span several"),
    (("172.30.10.10", "172.30.10.11"), "cluster IPv4 addresses .* span several"),
    (("172.30.10.10", "172.30.20.31"), "given to both"),
    (("172.30.10.1", "172.30.20.10"), "gateway"),
])
def test_bad_plans(second, message):
    hosts = [network.host_spec("pg1", "debian12", "172.30.10.31", "172.30.20.31"),
             network.host_spec("lb1", "debian12", *second)]
    with pytest.raises(LabError, match=message):
        network.subnets(hosts)


def test_cluster_on_the_management_subnet():
    with pytest.raises(LabError, match="share 172.30.10.0/24"):
        network.subnets([network.host_spec("pg1", "debian12", "172.30.10.31", "172.30.10.131")])


def test_container_entries_short_names_on_the_cluster():
    entries = network.container_entries(hosts_v4(), "pg1")
    assert ("pg1.mgmt.hslab", "172.30.10.31") in entries and ("lb1.cluster.hslab", "172.30.20.10") in entries
    assert ("lb1", "172.30.20.10") in entries
    assert not [e for e in entries if e[0] == "pg1"]  # its own short name is Docker's record


def test_platforms_and_create_args():
    specs = cli.platform_hosts([{"name": "pg-1", "image": "debian12", "address": "172.30.25.11",
                                 "cluster_address": "fd00:172:30:35::11", "groups": ["postgres"]}])
    assert specs[0]["cluster"] == ["fd00:172:30:35::11"] and specs[0]["mgmt_name"] == "pg-1.mgmt.hslab"
    with pytest.raises(LabError, match="no cluster_address"):
        cli.platform_hosts([{"name": "x", "address": "172.30.25.12"}])
    args = create_args("pg-1", "debian12", "hs-postgres", "172.30.25.11",
                       etc_hosts=[("pg-2", "fd00:172:30:35::12")], ipv6=True)
    assert args[:3] == ["docker", "create", "--name"]
    assert "net.ipv6.conf.all.disable_ipv6=0" in args and "pg-2:fd00:172:30:35::12" in args
    assert "--sysctl" not in create_args("pg-1", "debian12", "hs-postgres", "172.30.25.11")


def test_hosts_block(tmp_path):
    path = str(tmp_path / "hosts")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("127.0.0.1 localhost\n")
    assert etchosts.set_block("lab", [("172.30.10.31", "pg1.mgmt.hslab")], path)
    assert not etchosts.set_block("lab", [("172.30.10.31", "pg1.mgmt.hslab")], path)
    etchosts.set_block("molecule-pki", [("172.30.21.11", "pki-d12.mgmt.hslab")], path)
    etchosts.set_block("lab", [("172.30.10.32", "pg2.mgmt.hslab")], path)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("127.0.0.1 localhost\n") and "pg1" not in text
    assert etchosts.block("lab", path) == [("172.30.10.32", "pg2.mgmt.hslab")]
    assert etchosts.block("molecule-pki", path) == [("172.30.21.11", "pki-d12.mgmt.hslab")]
    etchosts.set_block("lab", [], path)
    etchosts.set_block("molecule-pki", [], path)
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == "127.0.0.1 localhost\n"


def _writer(path, label):
    for i in range(30):
        etchosts.set_block(label, [(f"172.30.{label[-2:]}.{i + 2}", f"h{i}.{label}.hslab")], path)


def test_hosts_blocks_of_parallel_scenarios(tmp_path):
    path = str(tmp_path / "hosts")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("127.0.0.1 localhost\n")
    labels = [f"molecule-s{n}" for n in range(21, 25)]
    procs = [multiprocessing.Process(target=_writer, args=(path, label)) for label in labels]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    for label in labels:  # every writer's last block survived the others
        assert etchosts.block(label, path) == [(f"172.30.{label[-2:]}.31", f"h29.{label}.hslab")]
