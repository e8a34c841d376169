"""playbooks/rotate_secrets.yml: which tiers a run rotates, from -e rotate_tiers as users type it.

An extra variable cannot be replaced by set_fact, so the playbook parses rotate_tiers once into
_rotate_tiers (localhost) and every later play must read that list: an earlier version kept
reading the raw string, and `-e rotate_tiers=redis` skipped the app's steps
(`"redis" | intersect([...])` compares characters). Found by a new-user tryout.
"""

import json
import os
import re

import inventory_harness as harness
import pytest
import yaml

PLAYBOOK = os.path.join(harness.ROOT, "playbooks", "rotate_secrets.yml")


def tiers_play():
    with open(PLAYBOOK, encoding="utf-8") as fh:
        plays = yaml.safe_load(fh)
    assert plays[0]["name"] == "Rotate - which tiers", "the tiers are decided first, before any host is contacted"
    return plays[0]


def run_tiers_play(tmp_path, *extra):
    """The playbook's own first play, plus a task writing what it decided to a file."""
    play = tiers_play()
    out = tmp_path / "tiers.json"
    play["tasks"].append({"name": "Record", "ansible.builtin.copy": {
        "content": "{{ hostvars['localhost']['_rotate_tiers'] | to_json }}", "dest": str(out), "mode": "0600"}})
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([play]))
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    localhost: {ansible_connection: local, ansible_python_interpreter: %s}\n"
                   % json.dumps(os.path.join(harness.BIN, "python")))
    rc, output = harness.run_playbook(inv, book, *extra)
    return rc, output, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize(("given", "want"), [
    ([], ["postgresql", "redis", "monitoring"]),
    (["-e", "rotate_tiers=redis"], ["redis"]),
    (["-e", "rotate_tiers=postgresql,redis,monitoring"], ["postgresql", "redis", "monitoring"]),
    (["-e", "rotate_tiers='postgresql, monitoring'"], ["postgresql", "monitoring"]),
    (["-e", '{"rotate_tiers": ["redis", "monitoring"]}'], ["redis", "monitoring"]),
])
def test_tiers_as_typed_become_a_list(tmp_path, given, want):
    rc, output, tiers = run_tiers_play(tmp_path, *given)
    assert rc == 0, output[-2000:]
    assert tiers == want


@pytest.mark.parametrize(("given", "message"), [
    (["-e", "rotate_tiers=redis,bogus"], 'rotate_tiers: "bogus" unknown'),
    (["-e", "rotate_tiers="], "rotate_tiers: empty"),
    (["-e", '{"rotate_tiers": []}'], "rotate_tiers: empty"),
])
def test_unknown_or_no_tiers_stop_before_any_host(tmp_path, given, message):
    inventory = harness.write_inventory(tmp_path / "inventory.yml", harness.sound_inventory())
    rc, output = harness.run_playbook(inventory, PLAYBOOK, *given)
    assert rc != 0
    assert message in output
    assert "UNREACHABLE" not in output, "stopped before the preflight contacted a host"


def test_later_plays_read_the_parsed_list_only():
    with open(PLAYBOOK, encoding="utf-8") as fh:
        text = fh.read()
    uses = re.findall(r"hostvars\['localhost'\]\['(\w+)'\]", text)
    assert uses and set(uses) <= {"_rotate_tiers", "_rolling_app_hosts", "_rolling_app_done"}, set(uses)
    assert not re.search(r"[^_]rotate_tiers\s*\|", text), "the raw extra variable is never used as a list"
