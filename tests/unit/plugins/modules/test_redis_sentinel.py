"""redis_sentinel against a real redis-server and redis-sentinel started on loopback.

Skipped when the binaries are absent (``apt-get install redis-server redis-sentinel``).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULE = os.path.join(ROOT, "plugins", "modules", "redis_sentinel.py")
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(not SERVER or not shutil.which("redis-sentinel"),
                                reason="redis-server/redis-sentinel not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("redis")
    master, replica, sentinel = free_port(), free_port(), free_port()
    procs = []
    for port, extra in ((master, []), (replica, ["--replicaof", "127.0.0.1", str(master)])):
        procs.append(subprocess.Popen([SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                                       "--save", "", "--appendonly", "no", "--masterauth", "rpw",
                                       "--requirepass", "rpw", *extra],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    (d / "sentinel-users.acl").write_text("user default off resetpass -@all\n"
                                          "user sentinel on >spw ~* &* +@all\n")
    conf = d / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {d}\naclfile {d}/sentinel-users.acl\n"
                    f"sentinel monitor main 127.0.0.1 {master} 1\n"
                    "sentinel auth-pass main rpw\n"
                    "sentinel down-after-milliseconds main 30000\n"
                    "sentinel failover-timeout main 180000\n")
    procs.append(subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    try:
        for port in (master, replica, sentinel):
            wait_port(port)
        # the Sentinel needs an INFO round to learn the replica
        deadline = time.time() + 20
        while time.time() < deadline:
            res = run(tmp_path_factory.mktemp("a"), sentinel_port=sentinel)
            if res.get("replicas"):
                break
            time.sleep(0.5)
        yield {"master": master, "replica": replica, "sentinel": sentinel, "dir": d}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


def run(tmp, sentinel_port, check=False, diff=False, **params):
    args = {"master_name": "main", "login_port": sentinel_port, "login_user": "sentinel",
            "login_password": "spw", "_ansible_check_mode": check, "_ansible_diff": diff}
    args.update(params)
    path = tmp / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    res = subprocess.run([sys.executable, MODULE, str(path)], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    return json.loads(res.stdout)


def test_info(cluster, tmp_path):
    res = run(tmp_path, cluster["sentinel"])
    assert res["monitored"] is True and res["changed"] is False
    assert res["master_host"] == "127.0.0.1" and res["master_port"] == cluster["master"]
    assert [r["port"] for r in res["replicas"]] == [cluster["replica"]]
    assert res["ckquorum"]["ok"] is True and res["ckquorum"]["usable_sentinels"] == 1
    assert "spw" not in json.dumps(res)


def test_wrong_password_and_unknown_master(cluster, tmp_path):
    res = run(tmp_path, cluster["sentinel"], login_password="nope")  # noqa: S106 - a wrong password on purpose
    assert res.get("failed") and "WRONGPASS" in res["msg"]
    res = run(tmp_path, cluster["sentinel"], master_name="other", allow_unknown_master=True)
    assert res["monitored"] is False and not res.get("failed")
    res = run(tmp_path, free_port(), allow_unknown_master=True)
    assert res["monitored"] is False and "cannot connect" in res["error"]
    res = run(tmp_path, cluster["sentinel"], master_name="other")
    assert res.get("failed")


def test_set_is_idempotent_with_check_and_diff(cluster, tmp_path):
    settings = {"down-after-milliseconds": 5000, "failover_timeout": 60000, "parallel-syncs": 1}
    res = run(tmp_path, cluster["sentinel"], check=True, diff=True, action="set", settings=settings)
    assert res["changed"] is True and res["master"]["down-after-milliseconds"] == 30000
    assert res["diff"]["after"]["down-after-milliseconds"] == 5000
    res = run(tmp_path, cluster["sentinel"], diff=True, action="set", settings=settings)
    assert res["changed"] is True and sorted(res["changes"]) == ["down-after-milliseconds", "failover-timeout"]
    assert res["master"]["down-after-milliseconds"] == 5000
    res = run(tmp_path, cluster["sentinel"], action="set", settings=settings)
    assert res["changed"] is False and res["changes"] == []
    res = run(tmp_path, cluster["sentinel"], action="set", settings={"bogus": 1})
    assert res.get("failed") and "unknown Sentinel setting" in res["msg"]


def test_failover_check_mode_then_real(cluster, tmp_path):
    res = run(tmp_path, cluster["sentinel"], check=True, action="failover")
    assert res["changed"] is True and res["master_port"] == cluster["master"]
    res = run(tmp_path, cluster["sentinel"], action="failover", wait_timeout=60)
    assert res["changed"] is True, res
    assert res["previous_master"] == f"127.0.0.1:{cluster['master']}"
    assert res["master_port"] == cluster["replica"]


def test_reset(cluster, tmp_path):
    res = run(tmp_path, cluster["sentinel"], check=True, action="reset")
    assert res["changed"] is True and "reset_count" not in res
    res = run(tmp_path, cluster["sentinel"], action="reset")
    assert res["changed"] is True and res["reset_count"] == 1
