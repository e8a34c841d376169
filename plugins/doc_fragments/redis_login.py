# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How a module reaches and logs in to a Redis, Valkey or Sentinel instance: the options of
    # plugins/module_utils/redis_auth.py's login_argument_spec(). A module states what its
    # login_user needs, and whether login_passwords is required or defaults to [].
    DOCUMENTATION = r"""
options:
  login_host:
    description: Address of the instance.
    type: str
    default: 127.0.0.1
  login_port:
    description: Port of the instance.
    type: int
    default: 6379
  login_user:
    description: ACL user to log in as.
    type: str
    default: admin
  login_passwords:
    description: Passwords of O(login_user), tried in this order; the first accepted is used.
    type: list
    elements: str
  connect_timeout:
    description: Seconds to wait for the connection and for each reply.
    type: float
    default: 5.0
  tls:
    description: Connect over TLS.
    type: bool
    default: false
  tls_ca_file:
    description: CA bundle that signed the instance's certificate.
    type: path
  tls_cert_file:
    description: Client certificate (when the instance asks for one).
    type: path
  tls_key_file:
    description: Key of O(tls_cert_file).
    type: path
"""
