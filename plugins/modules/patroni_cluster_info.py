#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: patroni_cluster_info
short_description: Read the state of a Patroni cluster from its REST API
version_added: "0.1.0"
description:
  - Reads C(GET /cluster) (and optionally C(GET /config)) from the first Patroni member of
    O(api_url) that answers and returns the leader, each member's role, state, replication
    lag, timeline, pending restart flag and tags, and whether the cluster is healthy.
  - Works with Patroni 3.0 (replicas report C(running)) and 4.x (C(streaming)).
author:
  - hardened.stack contributors (@hardened-stack)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  api_url:
    description:
      - Base URLs of Patroni REST APIs, e.g. C(https://10.0.0.11:8008). They are tried in order.
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
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each request.
    type: int
    default: 5
  max_lag:
    description: Replication lag in bytes above which a replica makes the cluster unhealthy.
    type: int
    default: 1048576
  expected_members:
    description: Number of members a healthy cluster has (not checked when omitted).
    type: int
  config:
    description: Also return the dynamic configuration (C(GET /config)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the cluster
  hardened.stack.patroni_cluster_info:
    api_url:
      - https://10.0.0.11:8008
      - https://10.0.0.12:8008
    ca_path: /etc/hardened-stack/pki/ca.crt
  register: pg

- name: Show the leader
  ansible.builtin.debug:
    msg: "{{ pg.cluster.leader }} leads; healthy: {{ pg.healthy }}"
"""

RETURN = r"""
cluster:
  description: The cluster as the API reports it.
  returned: always
  type: dict
  contains:
    leader:
      description: Name of the leader (null when there is none).
      type: str
    pause:
      description: Whether automatic failover is paused (maintenance mode).
      type: bool
    members:
      description: One dict per member, sorted by name.
      type: list
      elements: dict
      sample:
        - name: pg-1
          role: leader
          state: running
          host: 10.0.0.11
          port: 5432
          api_url: https://10.0.0.11:8008/patroni
          timeline: 3
          lag: 0
          pending_restart: false
          tags: {}
healthy:
  description: Whether the cluster is healthy (one running leader, every replica running or
    streaming on the leader's timeline with a lag of at most O(max_lag)).
  returned: always
  type: bool
problems:
  description: Why the cluster is not healthy.
  returned: always
  type: list
  elements: str
config:
  description: The dynamic configuration, when O(config=true).
  returned: when O(config=true)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.stack.plugins.module_utils.patroni import (
    PatroniClient, PatroniError, health_problems)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            api_url=dict(type="list", elements="str", required=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path", no_log=False),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=5),
            max_lag=dict(type="int", default=1048576),
            expected_members=dict(type="int"),
            config=dict(type="bool", default=False),
        ),
        required_together=[["client_cert", "client_key"]],
        supports_check_mode=True,
    )
    p = module.params
    client = PatroniClient(p["api_url"], ca_path=p["ca_path"], client_cert=p["client_cert"],
                           client_key=p["client_key"], validate_certs=p["validate_certs"],
                           timeout=p["timeout"])
    try:
        cluster = client.cluster()
        result = dict(changed=False, cluster=cluster)
        result["problems"] = health_problems(cluster, p["max_lag"], p["expected_members"])
        result["healthy"] = not result["problems"]
        if p["config"]:
            result["config"] = client.config()
    except PatroniError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
