"""The lab's and bench/converge's readers of ansible-playbook output (lab/leaks.recap, bench/converge's
profile_tasks parser), on output as ansible-core 2.19 prints it with the profile_tasks callback."""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from lab import leaks  # noqa: E402

_SPEC = importlib.util.spec_from_file_location("converge_main", os.path.join(ROOT, "bench", "converge_main.py"))
converge_main = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(converge_main)

# A no-op rerun's end (two hosts kept), then profile_tasks' summary (recorded in the lab).
OUTPUT = """\
TASK [hardened.stack.baseline : Write the legal banner] ************************
ok: [app1]
changed: [pg1]

PLAY RECAP *********************************************************************
app1                       : ok=237  changed=0    unreachable=0    failed=0    skipped=56   rescued=0    ignored=0
pg1                        : ok=316  changed=2    unreachable=0    failed=0    skipped=98   rescued=0    ignored=0


TASKS RECAP ********************************************************************
Monday 07 December 2026  14:51:37 +0000 (0:00:00.586)       0:10:48.035 *******
===============================================================================
hardened.stack.baseline : Only root may use cron and at ----------------- 7.86s
hardened.stack.firewall : Install iptables (nf_tables backend on Debian 12 and 13) --- 7.63s
hardened.stack.baseline : Write the legal banner ------------------------ 7.84s
Gathering Facts --------------------------------------------------------- 5.90s
"""


def test_recap_reads_only_the_host_rows():
    rows = leaks.recap(OUTPUT)
    assert sorted(rows) == ["app1", "pg1"]  # the profile_tasks lines after the recap are not hosts
    assert rows["pg1"]["changed"] == 2 and rows["app1"]["ok"] == 237
    assert leaks.recap_changed(OUTPUT) == 2


def test_changed_tasks_names_the_task_per_host():
    assert leaks.changed_tasks(OUTPUT, "pg1") == ["hardened.stack.baseline : Write the legal banner"]
    assert leaks.changed_tasks(OUTPUT, "app1") == []


def test_profile_slowest_first_and_per_role():
    rows = converge_main.profile(OUTPUT)
    assert rows[0] == ("hardened.stack.baseline : Only root may use cron and at", 7.86)
    assert [r[1] for r in rows] == [7.86, 7.84, 7.63, 5.9]
    roles = dict(converge_main.per_role(rows))
    assert roles == {"hardened.stack.baseline": 7.86 + 7.84, "hardened.stack.firewall": 7.63, "(playbook)": 5.9}
