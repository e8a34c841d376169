"""docs/awx.md's list of tags for the job template's tags prompt is exactly what
``ansible-playbook --list-tags hardened.stack.site`` reports (``always`` aside: it is no choice)."""

import os
import re
import subprocess
import sys

from lab import collection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# .build/collections, where the checkout is linked as hardened.stack (lab/collection.py)
COLLECTIONS = collection.importable()


def listed_tags(tmp_path):
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, HOME=str(tmp_path), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--list-tags", "hardened.stack.site"], env=env,
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=120, check=True)
    tags = set()
    for line in re.findall(r"TAGS: \[([^\]]*)\]", res.stdout):
        tags.update(tag.strip() for tag in line.split(",") if tag.strip())
    assert "preflight" in tags and "postgresql" in tags, res.stdout  # the output was read
    return tags


def documented_tags():
    with open(os.path.join(ROOT, "docs", "awx.md"), encoding="utf-8") as fh:
        text = fh.read()
    block = re.search(r"<!-- BEGIN site-tags[^>]*-->\n(.*?)<!-- END site-tags -->", text, re.S).group(1)
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    return {tag for row in rows for tag in re.findall(r"`([^`]+)`", row)}


def test_documented_tags_are_the_site_playbooks_tags(tmp_path):
    listed = listed_tags(tmp_path)
    documented = documented_tags()
    assert "always" in listed and "always" not in documented
    assert documented == listed - {"always"}, (
        "docs/awx.md site-tags: missing %s, not in site.yml %s"
        % (sorted(listed - {"always"} - documented), sorted(documented - listed)))
