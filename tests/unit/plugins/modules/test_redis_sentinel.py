"""redis_sentinel against a real redis-server and redis-sentinel started on loopback.

Skipped when the binaries are absent (``apt-get install redis-server redis-sentinel``). The
servers run as tests/unit/loopback.py starts them (fixture ``module_procs``).
"""

import json
import os
import subprocess
import sys

import pytest
from loopback import SENTINEL, free_port, needs_redis, until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULE = os.path.join(ROOT, "plugins", "modules", "redis_sentinel.py")
COLLECTIONS = os.path.join(ROOT, ".build", "collections")

pytestmark = needs_redis


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, module_procs):
    d = tmp_path_factory.mktemp("redis")
    auth = ("--masterauth", "rpw", "--requirepass", "rpw")
    master = module_procs.redis_server(d, *auth)
    replica = module_procs.redis_server(d, *auth, "--replicaof", "127.0.0.1", str(master))
    sentinel = free_port()
    (d / "sentinel-users.acl").write_text("user default off resetpass -@all\n"
                                          "user sentinel on >spw ~* &* +@all\n")
    conf = d / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {d}\naclfile {d}/sentinel-users.acl\n"
                    f"sentinel monitor main 127.0.0.1 {master} 1\n"
                    "sentinel auth-pass main rpw\n"
                    "sentinel down-after-milliseconds main 30000\n"
                    "sentinel failover-timeout main 180000\n")
    module_procs.serve(sentinel, SENTINEL, conf)
    # the Sentinel needs an INFO round to learn the replica
    until(lambda: run(tmp_path_factory.mktemp("a"), sentinel_port=sentinel).get("replicas"), step=0.5)
    return {"master": master, "replica": replica, "sentinel": sentinel, "dir": d}


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
