"""What the Molecule verifiers (molecule/*/tests/test_*.py) share: the scenario's hosts and
their two addresses, rerunning a playbook the way Molecule runs it, and reading its PLAY RECAP.
A verifier imports it with

    sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
    import verifier

Addresses come from the scenario's molecule.yml, the one place a scenario states them (never
hard-coded in a test). Each platform has two (see .config/molecule/config.yml):

* ``cluster_address(name)``: where the host's services listen and what its peers dial, what
  pg_hba, the firewall, Sentinel, Patroni and the certificates report
  (``hardened_stack_address``); an IPv4 or IPv6 literal;
* ``management_address(name)``: its IPv4 on the management network, where Ansible and
  testinfra connect (by the name ``management_name(name)``): SSH only, plus nginx 80/443 on
  a load balancer. No other service answers there.

``url_host(a)`` brackets an IPv6 literal for a URL or ``host:port`` (``host_port(a, 2379)``,
``url("https", a, 2379, "/health")``): the collection's own address module
(plugins/module_utils/address.py, through lab/collection.py); libpq ``host=`` strings and
redis-cli ``-h`` take the bare literal.

Secrets are read as the scenario's roles read them, never by parsing files here:
``secret("redis", on="redis-1", user="app")`` renders the host's variables with Ansible
(hardened_stack_secrets_dir, the path's parameters, the vault variable) and reads the
producing role's file with the collection's secrets module (plugins/module_utils/secrets.py).
Outside Molecule (the benches), the scenario's last ephemeral directory is used.
"""

import functools
import glob
import ipaddress
import json
import os
import subprocess
import sys

import yaml

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)
from lab import collection, leaks, poll, variables  # noqa: E402  (the collection's module_utils, Ansible's rendering)

address = collection.module_utils("address")
secrets = collection.module_utils("secrets")
MGMT_DOMAIN = "mgmt.hslab"  # lab/network.py: <host>.mgmt.hslab is the management address


def scenario_directory(scenario: str | None = None) -> str:
    """The scenario's directory: ``scenario`` (a directory or a scenario name), else Molecule's
    MOLECULE_SCENARIO_DIRECTORY."""
    if scenario is None:
        return os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    if os.path.isdir(scenario):
        return scenario
    return os.path.join(PROJECT, "molecule", scenario)


@functools.cache
def _platforms(directory: str) -> dict[str, dict]:
    with open(os.path.join(directory, "molecule.yml"), encoding="utf-8") as fh:
        return {p["name"]: p for p in yaml.safe_load(fh)["platforms"]}


def platforms(scenario: str | None = None) -> dict[str, dict]:
    """{name: platform} of the scenario's molecule.yml (name, image, address, cluster_address,
    groups), in file order."""
    return _platforms(os.path.abspath(scenario_directory(scenario)))


def group(name: str, scenario: str | None = None) -> list[str]:
    """The platforms whose ``groups`` include ``name``, sorted."""
    return sorted(n for n, p in platforms(scenario).items() if name in p.get("groups", []))


def _literal(value) -> str:
    ip = address.parse_ip(value)
    if ip is None:
        raise ValueError(f"{value!r} is not an IP address")
    return ip.compressed


def cluster_addresses(name: str, scenario: str | None = None) -> list[str]:
    """Every cluster address of platform ``name`` (``cluster_address``: a literal or a list, the
    first being THE address), normalised."""
    value = platforms(scenario)[name]["cluster_address"]
    return [_literal(v) for v in (value if isinstance(value, list) else [value])]


def cluster_address(name: str, scenario: str | None = None) -> str:
    """The cluster address of platform ``name``: where its services listen, what peers dial."""
    return cluster_addresses(name, scenario)[0]


def cluster_addresses_of(names, scenario: str | None = None) -> dict[str, str]:
    """{name: cluster address} for ``names`` (e.g. ``group("redis")``)."""
    return {n: cluster_address(n, scenario) for n in names}


def management_address(name: str, scenario: str | None = None) -> str:
    """The management IPv4 of platform ``name`` (SSH; nginx 80/443 on a load balancer)."""
    return _literal(platforms(scenario)[name]["address"])


def management_name(name: str) -> str:
    """The name Ansible connects to (resolves to the management address)."""
    return f"{name}.{MGMT_DOMAIN}"


def cluster_address_literal(value: str) -> str:
    """An address as a service reported it (``[fd00::11]``, ``FD00:0::11``) in the spelling
    ``cluster_address`` returns, to compare the two."""
    return _literal(value)


def is_ipv6(address: str) -> bool:
    return ipaddress.ip_address(_literal(address)).version == 6


# ``address`` as it goes into a URL or ``host:port`` (IPv6 literals bracketed), ``10.0.5.11:2379``
# / ``[fd00::11]:2379``, ``https://[fd00::11]:2379/health``: the collection's helpers.
url_host = address.host_port
host_port = address.host_port
url = address.url


def socket_url(addr: str, port: int, proto: str = "tcp") -> str:
    """testinfra's socket spec: ``tcp://10.0.5.11:6379`` / ``tcp://fd00::11:6379`` (testinfra
    splits the port off at the last colon and takes the IPv6 literal unbracketed)."""
    return f"{proto}://{_literal(addr)}:{port}"


def gateway(addr: str) -> str:
    """The Docker bridge gateway of the lab network holding ``addr`` (the /24's or /64's first
    host): the source address of traffic from this machine (the controller) to that network."""
    prefix = 64 if is_ipv6(addr) else 24
    return str(next(ipaddress.ip_network(f"{_literal(addr)}/{prefix}", strict=False).hosts()))


def _scenario_name(scenario: str | None) -> str:
    return os.path.basename(os.path.abspath(scenario_directory(scenario)))


def ephemeral_directory(scenario: str | None = None) -> str:
    """Molecule's ephemeral directory of the scenario (its inventory, ansible.cfg, CA and
    secrets): MOLECULE_EPHEMERAL_DIRECTORY under Molecule, else the newest
    ``~/.ansible/tmp/molecule.*.<scenario>`` (a bench run after ``molecule converge``)."""
    name = _scenario_name(scenario)
    current = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if current and os.environ.get("MOLECULE_SCENARIO_NAME", name) == name:
        return current
    found = sorted(glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{name}")), key=os.path.getmtime)
    if not found:
        raise SystemExit(f"no {name} Molecule scenario found: run `molecule converge -s {name}` first")
    return found[-1]


def inventory_file(scenario: str | None = None) -> str:
    """The inventory Molecule wrote for the scenario."""
    name = _scenario_name(scenario)
    if os.environ.get("MOLECULE_INVENTORY_FILE") and os.environ.get("MOLECULE_SCENARIO_NAME", name) == name:
        return os.environ["MOLECULE_INVENTORY_FILE"]
    return os.path.join(ephemeral_directory(scenario), "inventory", "ansible_inventory.yml")


def molecule_env(scenario: str | None = None) -> dict:
    """The environment of Molecule's own ansible-playbook runs (its ansible.cfg in the
    scenario's ephemeral directory, the checkout's collection link), with plain output."""
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ephemeral_directory(scenario), "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"),
                ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="false",
                ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")


@functools.cache
def _render(inventory: str, host: str, expressions: str, scenario: str) -> dict:
    return variables.render(inventory, json.loads(expressions), host, env=molecule_env(scenario))[host]


def rendered(host: str, expressions: dict, scenario: str | None = None) -> dict:
    """``expressions`` (Jinja templates) rendered by Ansible for ``host`` of the scenario's
    inventory (once per host and expressions; nothing runs on the host)."""
    directory = os.path.abspath(scenario_directory(scenario))
    return _render(inventory_file(directory), host, json.dumps(expressions, sort_keys=True), directory)


def secret(kind: str, *, on: str, vault: str | None = None, scenario: str | None = None, **params) -> str:
    """Secret ``kind`` as host ``on``'s roles get it: the inventory variable ``vault`` when the
    scenario sets it, else the producing role's file under the scenario's
    hardened_stack_secrets_dir, read with the collection's secrets module (parameters the host's
    variables do not give, e.g. ``user="app"``, in ``params``)."""
    return collection.secret(kind, rendered(on, collection.secret_expressions(kind, vault), scenario), **params)


def wait(predicate, timeout: float = 90, step: float = 1.0):
    """Poll ``predicate`` until it returns something true (returned), at most ``timeout``
    seconds; then its last answer."""
    return poll.until(predicate, timeout, step)


def playbook(*args: str, cwd: str, timeout: int = 1200, env: dict | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``ansible-playbook -i <scenario inventory> *args``."""
    res = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args], cwd=cwd,
                         env=env if env is not None else molecule_env(), capture_output=True, text=True,
                         timeout=timeout, check=False)
    return res.returncode, res.stdout + res.stderr


# The PLAY RECAP of a playbook's output (lab/leaks.py reads the lab's the same way).
recap = leaks.recap
recap_changed = leaks.recap_changed
