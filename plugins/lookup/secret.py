# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: secret
author:
  - hardened.stack contributors (@hardened-stack)
version_added: 0.1.0
short_description: Read (or, for its producing role, create) a generated secret on the controller
description:
  - The one way the collection's roles, playbooks and inventories reach a password the
    collection generates. The layout lives in C(plugins/module_utils/secrets.py) and is
    documented in C(docs/secrets.md).
  - Files live under O(secrets_dir), one file per secret, mode 0600 in directories of mode
    0700, written atomically.
  - Consumers read only. A missing file fails with a message naming the producing role and
    the vault variable that replaces it; a wrong path never creates a second password.
  - The producing role passes O(create=true), and the value is generated once (letters and
    digits, 32 characters, 48 for the pgBackRest passphrase) and reused on every later run.
  - A vault variable given by the user always wins; the roles test for it before calling
    this lookup.
  - With O(controller_state=external) (C(hardened_stack_controller_state)) nothing is generated;
    a producer whose file is missing fails, naming the vault variable to set and where, exactly
    like a consumer. The per-role C(*_generate_passwords) switches keep working on their own.
  - In check mode (C(ansible_check_mode)) nothing is written. A missing secret, for a producer
    and (with the local state) for a consumer, is replaced by a value generated in memory for
    this one lookup, with a warning; the real run generates and stores its own. A pre-contract
    file is read where it is, not copied.
  - The term V(controller_state) reads no secret; it returns the checked value of
    O(controller_state), V(local) or V(external) (the pki role and the preflight ask it).
  - The term V(export) returns every stored secret under the variable a role reads instead of
    its file (C(hardened.stack.secrets_export) writes them into an encrypted vars file), as
    C({variables, left}); C(left) lists the files no variable replaces.
options:
  _terms:
    description:
      - The kind of secret, one of V(postgresql), V(patroni_api), V(redis), V(monitoring),
        V(backup_cipher), V(backup_user); or V(controller_state), or V(export).
    required: true
    type: list
    elements: str
  cluster:
    description:
      - The PostgreSQL cluster (V(postgresql), V(patroni_api); C(postgresql_cluster_name)) or
        the Redis replication set (V(redis); C(redis_cluster_name)).
    type: str
  user:
    description:
      - The role or ACL user (V(postgresql), V(redis), V(backup_user)).
    type: str
  stanza:
    description:
      - The pgBackRest stanza (V(backup_cipher), V(backup_user); C(backup_stanza)).
    type: str
  create:
    description:
      - Generate the secret when it does not exist. Only the producing role sets this.
    type: bool
    default: false
  vault_variable:
    description:
      - The variable the caller would take instead of the file, named in the error message
        (default, the producing role's variable for this one secret, e.g.
        C(postgresql_replication_password) for the replication user, the C(postgresql_users)
        entry for an application role, C(redis_sentinel_password) for the Redis user
        C(sentinel)).
    type: str
  secrets_dir:
    description:
      - The directory on the controller (C(~) is expanded).
    type: str
    default: ~/.hardened-stack/secrets
    vars:
      - name: hardened_stack_secrets_dir
  names:
    description:
      - For V(export), the inventory's user-name variables (C(postgresql_superuser),
        C(postgresql_replication_user), C(postgresql_rewind_user), C(app_db_user),
        C(app_redis_user), C(app_sentinel_user)); role defaults for the ones not given.
    type: dict
    default: {}
  postgresql_users:
    description:
      - For V(export), the inventory's C(postgresql_users); returned with each entry's stored
        password filled in where the entry has none.
    type: list
    elements: dict
    default: []
  given:
    description:
      - For V(export), the inventory's own values of the variables the export writes
        (C(redis_app_password), C(app_db_password) ...). A non-empty one is not exported, and the
        consumers of that secret get the given value instead of the stale file.
      - Default, read from the inventory, on the first host of the group whose roles read each
        variable (C(EXPORT_SOURCES) in C(plugins/module_utils/secrets.py)).
    type: dict
  controller_state:
    description:
      - Where the controller-side state (these secrets and the internal CA) lives, V(local) or
        V(external); any other value fails naming C(hardened_stack_controller_state).
      - V(local) generates a missing secret once on this controller (with O(create=true)).
      - V(external) means the state is given (a vault file, an AWX credential, a mounted
        directory); a missing secret is an error naming the variable to set, never generated.
    type: str
    default: local
    vars:
      - name: hardened_stack_controller_state
"""

EXAMPLES = r"""
- name: The application's database password, from a vault variable or the postgresql role's file
  ansible.builtin.set_fact:
    app_db_password: >-
      {{ vault_app_db_password | default(lookup('hardened.stack.secret', 'postgresql',
      cluster=postgresql_cluster_name, user='app', vault_variable='app_db_password'), true) }}
  no_log: true

- name: Whether the controller may mint what is missing (local) or the state is given (external)
  ansible.builtin.debug:
    msg: "{{ lookup('hardened.stack.secret', 'controller_state') }}"

- name: Created once by the redis role (its own secrets only)
  ansible.builtin.set_fact:
    _redis_admin: "{{ lookup('hardened.stack.secret', 'redis', cluster=redis_cluster_name, user='admin', create=true) }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - One element, the secret's value (a string, without the file's final line feed); for
      V(controller_state), V(local) or V(external).
  type: list
  elements: str
"""

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.hardened.stack.plugins.module_utils import secrets


display = Display()


class LookupModule(LookupBase):

    def _rendered(self, name):
        """An option taken from a variable, rendered (the inventory may write it as a template)."""
        value = self.get_option(name)
        if self._templar is not None and isinstance(value, str):
            value = self._templar.template(value)
        return value

    def _user_names(self, kind, variables):
        """The host's values of the variables naming users with a vault variable of their own
        (postgresql_superuser ...), for the missing-secret message only; unknown or unrenderable
        ones are left to the role defaults."""
        names = {}
        for name in secrets.user_variables(kind) if kind in secrets.KINDS else ():
            if not variables or name not in variables:
                continue
            value = variables[name]
            if self._templar is not None:
                try:
                    value = self._templar.template(value)
                except AnsibleError:
                    value = None  # a message detail: never fail the lookup for it
            if isinstance(value, str) and value and "{{" not in value:
                names[name] = value
        return names

    @staticmethod
    def _inventory_given(variables):
        """``{variable: value}`` of the export's variables the inventory gives (EXPORT_SOURCES),
        as Ansible renders them for the first host of the group that reads them."""
        hostvars = (variables or {}).get("hostvars")
        groups = (variables or {}).get("groups") or {}
        given = {}
        if hostvars is None:
            return given
        for group, names in secrets.EXPORT_SOURCES:
            hosts = groups.get(group) or []
            if not hosts:
                continue
            host = hostvars[hosts[0]]
            for name in names:
                if name in given or name not in host:
                    continue
                try:
                    value = host[name]
                except AnsibleError as exc:
                    raise AnsibleLookupError("hardened.stack.secret: export: %s of %s cannot be read: %s"
                                             % (name, hosts[0], type(exc).__name__))
                if isinstance(value, str) and value:
                    given[name] = value
        return given

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("hardened.stack.secret takes one kind (one of %s), got %d terms"
                                     % (", ".join(sorted(secrets.KINDS)), len(terms)))
        kind = terms[0]
        try:
            state = secrets.controller_state(self._rendered("controller_state"))
        except secrets.SecretError as exc:
            raise AnsibleLookupError("hardened.stack.secret: %s" % exc)
        if kind == "controller_state":
            return [state]
        if kind == "export":
            try:
                given = self.get_option("given")
                found, left = secrets.export_variables(self._rendered("secrets_dir"), self.get_option("names"),
                                                       self.get_option("postgresql_users"),
                                                       self._inventory_given(variables) if given is None else given)
            except secrets.SecretError as exc:
                raise AnsibleLookupError("hardened.stack.secret: %s" % exc)
            return [{"variables": found, "left": left}]
        params = dict((name, self.get_option(name)) for name in ("cluster", "user", "stanza"))
        # An option taken from a variable (hardened_stack_secrets_dir) arrives as written in the
        # inventory: "{{ lab_cache_dir }}/secrets" must be rendered here, or the secret would be
        # looked for (and created) under a directory literally named "{{ lab_cache_dir }}".
        directory = self._rendered("secrets_dir")
        if directory is not None and ("{{" in u"%s" % directory or "{%" in u"%s" % directory):
            raise AnsibleLookupError("hardened.stack.secret: secrets_dir %r is still a template" % directory)
        check_mode = bool((variables or {}).get("ansible_check_mode", False))
        try:
            vault = self.get_option("vault_variable") or secrets.replacing_variable(
                kind, self._user_names(kind, variables), **params)
            target = secrets.path(kind, directory, **params)
            existed = check_mode and secrets.exists(kind, directory, **params)
            if self.get_option("create"):
                value = secrets.produce(kind, directory, state=state, check_mode=check_mode, vault_variable=vault,
                                        **params)
            else:
                value = secrets.read(kind, directory, vault_variable=vault, check_mode=check_mode, state=state,
                                     **params)
        except secrets.SecretError as exc:
            raise AnsibleLookupError("hardened.stack.secret: %s" % exc)
        if check_mode and not existed:
            display.warning("hardened.stack.secret: check mode: %s does not exist; a value generated in memory "
                            "for this lookup stands in for it and nothing was written (a real run %s)"
                            % (target, "generates and stores it" if self.get_option("create") else
                               "reads it once its producer made it"))
        return [value]
