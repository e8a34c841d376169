#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: patroni_cluster
short_description: Operate a Patroni cluster through its REST API
version_added: "0.1.0"
description:
  - Changes the dynamic configuration idempotently (C(PATCH /config) with only what differs,
    with a diff), switches the leader over to a candidate or to the healthiest replica, restarts
    members rolling (replicas first, leader last, by default only those with a pending restart),
    reinitialises a replica, pauses or resumes automatic failover, and waits until the cluster is
    healthy (one running leader, every replica running/streaming on the leader's timeline with a
    lag under O(max_lag)).
  - Talks to the first member of O(api_url) that answers; member-specific requests go to the
    member's own API URL as advertised in C(GET /cluster).
author:
  - hardened.stack contributors (@hardened-stack)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports what would change (and the configuration diff) without any unsafe request.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: For O(action=configure), O(action=pause) and O(action=resume).
options:
  action:
    description:
      - C(configure) makes the dynamic configuration contain O(config).
      - C(switchover) moves the leader to O(candidate) or to the healthiest replica.
      - C(restart) restarts members rolling (see O(pending_only), O(members)).
      - C(reinit) rebuilds the replica O(member) from the leader.
      - C(pause) / C(resume) turn maintenance mode on / off.
      - C(wait_healthy) only waits until the cluster is healthy.
      - C(wait_auth) waits until every member's REST API accepts O(username) and O(password)
        (after a password change and a Patroni reload; Patroni applies a new
        C(restapi.authentication) at its next loop after SIGHUP). The probe is an empty
        C(PATCH /config), which Patroni refuses after authentication (HTTP 400) and before it
        (HTTP 401); nothing changes. Needs O(client_cert) when the API verifies clients.
    type: str
    choices: [configure, switchover, restart, reinit, pause, resume, wait_healthy, wait_auth]
    default: wait_healthy
  api_url:
    description: Base URLs of Patroni REST APIs, e.g. C(https://10.0.0.11:8008), tried in order.
    type: list
    elements: str
    required: true
  ca_path:
    description: CA bundle that signed the members' REST API certificates.
    type: path
  client_cert:
    description: Client certificate to present (when the API verifies clients).
    type: path
  client_key:
    description: Key of O(client_cert).
    type: path
  username:
    description: User for the unsafe endpoints (C(restapi.authentication.username)).
    type: str
  password:
    description: Password of O(username).
    type: str
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each request (restarts and switchovers get longer).
    type: int
    default: 5
  config:
    description:
      - For O(action=configure), the dynamic configuration to enforce (nested dicts are merged;
        keys not given are left alone; a null value removes a key).
    type: dict
    default: {}
  candidate:
    description: For O(action=switchover), the member to hand the leader to (default the healthiest replica).
    type: str
  leader:
    description:
      - For O(action=switchover), switch over only when this member is the leader (idempotent
        "move the leader away from X"); nothing happens when another member leads.
    type: str
  member:
    description: For O(action=reinit), the replica to rebuild.
    type: str
  members:
    description: For O(action=restart), restrict the restart to these members.
    type: list
    elements: str
  pending_only:
    description: For O(action=restart), restart only members whose Patroni reports a pending restart.
    type: bool
    default: true
  max_lag:
    description: Replication lag in bytes a healthy replica (and a switchover candidate) may have.
    type: int
    default: 1048576
  expected_members:
    description: Number of members of a healthy cluster (not checked when omitted).
    type: int
  wait:
    description: After a change, wait until the cluster is healthy again.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for health (and for a configuration change to be applied).
    type: int
    default: 180
notes:
  - C(configure) waits C(loop_wait + 2) seconds after a PATCH so every member has applied it
    before a following C(restart) reads the pending restart flags.
"""

EXAMPLES = r"""
- name: Enforce the dynamic configuration
  hardened.stack.patroni_cluster:
    action: configure
    api_url: ["https://10.0.0.11:8008", "https://10.0.0.12:8008"]
    ca_path: /etc/hardened-stack/pki/ca.crt
    username: patroni
    password: "{{ vault_patroni_api_password }}"
    config:
      ttl: 20
      synchronous_mode: true
      postgresql:
        parameters:
          work_mem: 16MB

- name: Rolling restart where PostgreSQL needs one (replicas first)
  hardened.stack.patroni_cluster:
    action: restart
    api_url: ["https://10.0.0.11:8008"]
    ca_path: /etc/hardened-stack/pki/ca.crt
    username: patroni
    password: "{{ vault_patroni_api_password }}"

- name: Move the leader away from pg1 before its maintenance
  hardened.stack.patroni_cluster:
    action: switchover
    leader: pg1
    api_url: ["https://10.0.0.11:8008"]
    ca_path: /etc/hardened-stack/pki/ca.crt
    username: patroni
    password: "{{ vault_patroni_api_password }}"

- name: Wait until every member accepts the REST API user's new password (after a reload)
  hardened.stack.patroni_cluster:
    action: wait_auth
    api_url: ["https://10.0.0.11:8008"]
    ca_path: /etc/hardened-stack/pki/ca.crt
    client_cert: /etc/patroni/tls/server.crt
    client_key: /etc/patroni/tls/server.key
    username: patroni
    password: "{{ vault_patroni_api_password }}"
    expected_members: 3

- name: Wait until both replicas stream with less than 1 MB of lag
  hardened.stack.patroni_cluster:
    action: wait_healthy
    api_url: ["https://10.0.0.11:8008"]
    ca_path: /etc/hardened-stack/pki/ca.crt
    expected_members: 3
"""

RETURN = r"""
cluster:
  description: The cluster after the action (see M(hardened.stack.patroni_cluster_info)).
  returned: always
  type: dict
patch:
  description: The PATCH body sent (or that would be sent) for O(action=configure).
  returned: when O(action=configure)
  type: dict
candidate:
  description: The member that took over (or would) for O(action=switchover).
  returned: when O(action=switchover) and a switchover is needed
  type: str
restarted:
  description: Members restarted (or that would be), in order.
  returned: when O(action=restart)
  type: list
  elements: str
accepted_by:
  description: Members whose REST API accepts O(username) and O(password).
  returned: when O(action=wait_auth)
  type: list
  elements: str
problems:
  description: Why the cluster is not healthy at the end (empty when healthy).
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.stack.plugins.module_utils.patroni import (
    LEADER_ROLES, PatroniClient, PatroniError, apply_patch, auth_problems, auth_verdict, config_patch,
    health_problems, member, restart_plan, switchover_candidate)


class Runner(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.client = PatroniClient(p["api_url"], ca_path=p["ca_path"], client_cert=p["client_cert"],
                                    client_key=p["client_key"], username=p["username"],
                                    password=p["password"], validate_certs=p["validate_certs"],
                                    timeout=p["timeout"])
        self.deadline = time.time() + p["wait_timeout"]

    def cluster(self):
        return self.client.cluster()

    def wait_until(self, what, predicate):
        """Poll the cluster until ``predicate(cluster)`` returns no problems."""
        last = ["not read yet"]
        while True:
            try:
                cluster = self.cluster()
                last = predicate(cluster)
                if not last:
                    return cluster
            except PatroniError as exc:
                last = [str(exc)]
            if time.time() > self.deadline:
                self.module.fail_json(msg="timed out after %ds waiting for %s: %s"
                                      % (self.p["wait_timeout"], what, "; ".join(last)), problems=last)
            time.sleep(1)

    def healthy(self, cluster):
        return health_problems(cluster, self.p["max_lag"], self.p["expected_members"])

    def wait_healthy(self):
        return self.wait_until("a healthy cluster", self.healthy)

    # -- actions --------------------------------------------------------------------------
    def configure(self, result):
        current = self.client.config()
        patch = config_patch(current, self.p["config"])
        result["patch"] = patch or {}
        if not patch:
            return
        result["changed"] = True
        result["diff"] = dict(before=current, after=apply_patch(current, patch))
        if self.module.check_mode:
            return
        self.client.patch_config(patch)
        if self.p["wait"]:
            loop_wait = int(apply_patch(current, patch).get("loop_wait", 10))
            time.sleep(min(loop_wait + 2, max(0, self.deadline - time.time())))

    def pause(self, result, paused):
        cluster = self.cluster()
        if cluster["pause"] == paused:
            return
        result["changed"] = True
        result["diff"] = dict(before={"pause": cluster["pause"]}, after={"pause": paused})
        if self.module.check_mode:
            return
        self.client.patch_config({"pause": paused})
        self.wait_until("pause=%s" % paused, lambda c: [] if c["pause"] == paused else ["pause is %s" % c["pause"]])

    def switchover(self, result):
        cluster = self.cluster()
        leader = cluster["leader"]
        if leader is None:
            self.module.fail_json(msg="the cluster has no leader: nothing to switch over from", cluster=cluster)
        if self.p["leader"] is not None and self.p["leader"] != leader:
            return
        if self.p["candidate"] is not None and self.p["candidate"] == leader:
            return
        try:
            candidate = switchover_candidate(cluster, self.p["candidate"], self.p["max_lag"])
        except PatroniError as exc:
            self.module.fail_json(msg=str(exc), cluster=cluster)
        result.update(changed=True, candidate=candidate)
        if self.module.check_mode:
            return
        status, data = None, None
        for m in [member(cluster, leader)] + [m for m in cluster["members"] if m["name"] != leader]:
            try:
                status, data = self.client.request(
                    "POST", m["api_url"].rsplit("/", 1)[0] + "/switchover",
                    {"leader": leader, "candidate": candidate}, timeout=max(30, self.p["timeout"]))
                break
            except PatroniError as exc:
                data = str(exc)
        if status != 200:
            self.module.fail_json(msg="switchover from %s to %s refused: HTTP %s %s" % (leader, candidate, status, data))
        self.wait_until("%s to lead" % candidate,
                        lambda c: [] if c["leader"] == candidate and c["members"] and member(c, candidate)["state"] == "running"
                        else ["leader is %s" % c["leader"]])

    def restart(self, result):
        cluster = self.cluster()
        plan = restart_plan(cluster, self.p["pending_only"], self.p["members"])
        result["restarted"] = plan
        if not plan:
            return
        result["changed"] = True
        if self.module.check_mode:
            return
        if self.healthy(cluster):
            cluster = self.wait_healthy()
        for name in plan:
            body = {"restart_pending": True} if self.p["pending_only"] else {}
            # The leader may have changed meanwhile; the member's own API restarts it in place.
            self.client.member_request(cluster, name, "POST", "/restart", body, ok=(200,),
                                       timeout=max(60, self.p["timeout"]))
            cluster = self.wait_healthy()

    def wait_auth(self, result):
        """Poll every member with the authentication probe until all accept the credentials."""
        last = ["not asked yet"]
        while True:
            try:
                answers = self.client.auth_answers(self.cluster())
                result["accepted_by"] = sorted(n for n, (status, dummy) in answers.items()
                                               if auth_verdict(status) == "accepted")
                last = auth_problems(answers, self.p["expected_members"])
                if not last:
                    return
            except PatroniError as exc:
                last = [str(exc)]
            if time.time() > self.deadline:
                self.module.fail_json(msg="timed out after %ds waiting for every member's REST API to accept the "
                                      "password of %s: %s" % (self.p["wait_timeout"], self.p["username"], "; ".join(last)),
                                      problems=last, accepted_by=result.get("accepted_by", []))
            time.sleep(1)

    def reinit(self, result):
        cluster = self.cluster()
        name = self.p["member"]
        m = member(cluster, name)
        if m is None:
            self.module.fail_json(msg="member %s is not in the cluster" % name, cluster=cluster)
        if m["role"] in LEADER_ROLES:
            self.module.fail_json(msg="member %s is the leader: switch over before reinitialising it" % name)
        result["changed"] = True
        if self.module.check_mode:
            return
        self.client.member_request(cluster, name, "POST", "/reinitialize", {"force": True}, ok=(200,))
        time.sleep(2)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", default="wait_healthy",
                        choices=["configure", "switchover", "restart", "reinit", "pause", "resume", "wait_healthy",
                                 "wait_auth"]),
            api_url=dict(type="list", elements="str", required=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path", no_log=False),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=5),
            config=dict(type="dict", default={}),
            candidate=dict(type="str"),
            leader=dict(type="str"),
            member=dict(type="str"),
            members=dict(type="list", elements="str"),
            pending_only=dict(type="bool", default=True),
            max_lag=dict(type="int", default=1048576),
            expected_members=dict(type="int"),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=180),
        ),
        required_if=[["action", "reinit", ["member"]], ["action", "configure", ["config"]],
                     ["action", "wait_auth", ["username", "password"]]],
        required_together=[["client_cert", "client_key"], ["username", "password"]],
        supports_check_mode=True,
    )
    runner = Runner(module)
    action = module.params["action"]
    result = dict(changed=False, action=action)
    try:
        if action == "configure":
            runner.configure(result)
        elif action in ("pause", "resume"):
            runner.pause(result, action == "pause")
        elif action == "switchover":
            runner.switchover(result)
        elif action == "restart":
            runner.restart(result)
        elif action == "reinit":
            runner.reinit(result)
        elif action == "wait_auth":
            runner.wait_auth(result)
        if module.params["wait"] and not module.check_mode and (result["changed"] or action == "wait_healthy"):
            cluster = runner.wait_healthy()
        else:
            cluster = runner.cluster()
        result["cluster"] = cluster
        result["problems"] = runner.healthy(cluster)
    except PatroniError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
