"""Patroni REST API logic (plugins/module_utils/patroni.py): cluster state, health,
switchover candidates, restart order, idempotent configuration patches, HTTP handling."""

import io
import json

import pytest
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible_collections.hardened.stack.plugins.module_utils import patroni as p


def cluster_json(**over):
    data = {"members": [
        {"name": "pg-2", "role": "replica", "state": "streaming", "api_url": "https://10.0.0.12:8008/patroni",
         "host": "10.0.0.12", "port": 5432, "timeline": 3, "lag": 0},
        {"name": "pg-1", "role": "leader", "state": "running", "api_url": "https://10.0.0.11:8008/patroni",
         "host": "10.0.0.11", "port": 5432, "timeline": 3},
        {"name": "pg-3", "role": "replica", "state": "running", "api_url": "https://10.0.0.13:8008/patroni",
         "host": "10.0.0.13", "port": 5432, "timeline": 3, "lag": 100},
    ]}
    data.update(over)
    return data


def test_normalise_sorts_and_fills():
    c = p.normalise_cluster(cluster_json())
    assert c["leader"] == "pg-1"
    assert [m["name"] for m in c["members"]] == ["pg-1", "pg-2", "pg-3"]
    assert c["members"][0]["lag"] == 0 and c["members"][0]["pending_restart"] is False
    assert c["pause"] is False


def test_master_role_of_old_patroni_is_leader():
    data = cluster_json()
    data["members"][1]["role"] = "master"
    assert p.normalise_cluster(data)["leader"] == "pg-1"


def test_healthy_cluster_has_no_problems():
    assert p.health_problems(p.normalise_cluster(cluster_json()), 1024, 3) == []


@pytest.mark.parametrize("change, expect", [
    (lambda d: d["members"][0].update(state="starting"), "pg-2 is starting"),
    (lambda d: d["members"][0].update(lag="unknown"), "pg-2 has an unknown lag"),
    (lambda d: d["members"][2].update(lag=10 ** 9), "pg-3 lags"),
    (lambda d: d["members"][2].update(timeline=2), "pg-3 is on timeline 2"),
    (lambda d: d["members"][1].update(role="replica"), "0 leaders"),
    (lambda d: d["members"].pop(), "2 members, expected 3"),
])
def test_unhealthy(change, expect):
    data = cluster_json()
    change(data)
    problems = p.health_problems(p.normalise_cluster(data), 1024, 3)
    assert any(expect in x for x in problems), problems


def test_candidate_is_healthiest_replica_sync_first():
    data = cluster_json()
    assert p.switchover_candidate(p.normalise_cluster(data)) == "pg-2"
    data["members"][2]["role"] = "sync_standby"
    assert p.switchover_candidate(p.normalise_cluster(data)) == "pg-3"


def test_candidate_respects_nofailover_and_names_reasons():
    data = cluster_json()
    data["members"][0]["tags"] = {"nofailover": True}
    data["members"][2]["state"] = "stopped"
    with pytest.raises(p.PatroniError, match="pg-2: it is tagged nofailover; pg-3: it is stopped"):
        p.switchover_candidate(p.normalise_cluster(data))
    with pytest.raises(p.PatroniError, match="not a member"):
        p.switchover_candidate(p.normalise_cluster(cluster_json()), "pg-9")
    assert p.switchover_candidate(p.normalise_cluster(cluster_json()), "pg-3", max_lag=1000) == "pg-3"


def test_restart_plan_replicas_first_leader_last():
    data = cluster_json()
    for m in data["members"]:
        m["pending_restart"] = True
    c = p.normalise_cluster(data)
    assert p.restart_plan(c) == ["pg-2", "pg-3", "pg-1"]
    data["members"][0]["pending_restart"] = False
    assert p.restart_plan(p.normalise_cluster(data)) == ["pg-3", "pg-1"]
    assert p.restart_plan(p.normalise_cluster(cluster_json())) == []
    assert p.restart_plan(p.normalise_cluster(cluster_json()), pending_only=False, members=["pg-1"]) == ["pg-1"]


def test_config_patch_minimal_and_loose():
    current = {"ttl": 20, "loop_wait": 5, "synchronous_mode": False,
               "postgresql": {"use_pg_rewind": True, "parameters": {"work_mem": "4MB", "max_connections": 100}}}
    same = {"ttl": "20", "synchronous_mode": "off",
            "postgresql": {"use_pg_rewind": "on", "parameters": {"max_connections": "100"}}}
    assert p.config_patch(current, same) is None
    want = {"ttl": 20, "synchronous_mode": True, "postgresql": {"parameters": {"work_mem": "8MB", "new": "x"}}}
    patch = p.config_patch(current, want)
    assert patch == {"synchronous_mode": True, "postgresql": {"parameters": {"work_mem": "8MB", "new": "x"}}}
    after = p.apply_patch(current, patch)
    assert after["postgresql"]["parameters"] == {"work_mem": "8MB", "max_connections": 100, "new": "x"}
    assert p.config_patch(after, want) is None


def test_config_patch_null_removes_present_keys_only():
    assert p.config_patch({"a": 1}, {"a": None}) == {"a": None}
    assert p.config_patch({"b": 1}, {"a": None}) is None
    assert p.apply_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


class FakeResp(object):
    def __init__(self, code, body):
        self.code, self.body = code, body

    def getcode(self):
        return self.code

    def read(self):
        return self.body


def test_client_sends_auth_only_on_unsafe_requests_and_falls_over():
    calls = []

    def opener(url, **kw):
        calls.append((url, kw))
        if "10.0.0.11" in url:
            raise URLError("connection refused")
        if kw["method"] == "PATCH":
            return FakeResp(200, json.dumps({"ttl": 20}).encode())
        return FakeResp(200, json.dumps(cluster_json()).encode())

    c = p.PatroniClient(["https://10.0.0.11:8008/", "https://10.0.0.12:8008"], ca_path="/ca.crt",
                        username="patroni", password="s3cret", opener=opener)  # noqa: S106 (test value)
    assert c.cluster()["leader"] == "pg-1"
    assert [u for u, _kwargs in calls] == ["https://10.0.0.11:8008/cluster", "https://10.0.0.12:8008/cluster"]
    assert "url_username" not in calls[-1][1] and calls[-1][1]["ca_path"] == "/ca.crt"
    c.patch_config({"ttl": 20})
    assert calls[-1][1]["url_username"] == "patroni" and calls[-1][1]["force_basic_auth"]
    assert json.loads(calls[-1][1]["data"]) == {"ttl": 20}


def test_client_reports_http_errors_with_body():
    def opener(url, **kw):
        raise HTTPError(url, 503, "no", {}, io.BytesIO(b"switchover is not possible"))

    c = p.PatroniClient("https://10.0.0.11:8008", opener=opener)
    assert c.request("POST", "https://10.0.0.11:8008/switchover", {})[0] == 503
    with pytest.raises(p.PatroniError, match="HTTP 503 switchover is not possible"):
        c.any_member("GET", "/cluster")


def test_api_base():
    assert p.api_base("https://10.0.0.11:8008/patroni") == "https://10.0.0.11:8008"


def patroni_like_opener(passwords, calls=None, down=()):
    """An opener that answers like Patroni's REST API (api.py ``check_access`` then
    ``do_PATCH_config``): 403 without a client certificate, 401 when the member's
    ``restapi.authentication`` password differs, 400 for an empty body, 200 for a patch;
    GET /cluster lists the members."""
    def opener(url, **kw):
        if calls is not None:
            calls.append((url, kw))
        host = url.split("//", 1)[1].split(":", 1)[0]
        if host in down:
            raise URLError("connection refused")
        if kw["method"] == "GET":
            return FakeResp(200, json.dumps(cluster_json()).encode())
        if not kw.get("client_cert"):
            raise HTTPError(url, 403, "Forbidden", {}, io.BytesIO(b"client certificate required"))
        if kw.get("url_username") != "patroni" or kw.get("url_password") != passwords[host]:
            raise HTTPError(url, 401, "Unauthorized", {}, io.BytesIO(b"not authenticated"))
        if json.loads(kw["data"]) == {}:
            raise HTTPError(url, 400, "Bad Request", {}, io.BytesIO(b"<html>Bad Request</html>"))
        return FakeResp(200, kw["data"].encode())
    return opener


@pytest.mark.parametrize("status, verdict", [(400, "accepted"), (401, "refused"), (403, "unexpected"),
                                             (200, "unexpected"), (503, "unexpected")])
def test_auth_verdict(status, verdict):
    assert p.auth_verdict(status) == verdict


def test_auth_answers_probe_every_member_with_an_empty_patch():
    calls = []
    passwords = {"10.0.0.11": "new", "10.0.0.12": "new", "10.0.0.13": "old"}
    c = p.PatroniClient("https://10.0.0.11:8008", client_cert="/c.crt", client_key="/c.key",
                        username="patroni", password="new", opener=patroni_like_opener(passwords, calls))  # noqa: S106
    answers = c.auth_answers(c.cluster())
    assert {n: s for n, (s, _d) in answers.items()} == {"pg-1": 400, "pg-2": 400, "pg-3": 401}
    probes = [(u, kw) for u, kw in calls if kw["method"] == "PATCH"]
    urls = ["https://10.0.0.11:8008/config", "https://10.0.0.12:8008/config", "https://10.0.0.13:8008/config"]
    assert sorted(u for u, _kw in probes) == urls
    assert all(json.loads(kw["data"]) == {} and kw["force_basic_auth"] for _u, kw in probes)
    problems = p.auth_problems(answers, expected_members=3)
    assert problems == ["member pg-3 refuses the REST API user's password (HTTP 401)"]


def test_auth_problems_name_unreachable_members_and_missing_certificates():
    passwords = {"10.0.0.11": "pw", "10.0.0.12": "pw", "10.0.0.13": "pw"}
    c = p.PatroniClient("https://10.0.0.11:8008", username="patroni", password="pw",  # noqa: S106
                        opener=patroni_like_opener(passwords, down=("10.0.0.12",)))
    problems = p.auth_problems(c.auth_answers(c.cluster()), expected_members=4)
    assert any(x.startswith("member pg-2: PATCH https://10.0.0.12:8008/config") for x in problems), problems
    assert "member pg-1 answered the authentication probe with HTTP 403 client certificate required" in problems
    assert "3 members answered, expected 4" in problems
    assert p.auth_problems({"pg-1": (400, "Bad Request")}, expected_members=1) == []
