#!/usr/bin/env bash
# Lynis hardening index of fresh Debian 12 and 13 lab hosts, before and after the baseline
# role. One command; creates its own containers and removes them: management network
# 172.30.27.0/24 (Ansible connects there, by name), cluster network 172.30.37.0/24 (the lab tool
# cables every host to both; nothing here listens on it). Both are free in DEVELOPERS.md's plan.
#   bench/lynis.sh            (from the repository root, after `make venv images`)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:/usr/bin:/usr/sbin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$PWD/.build/collections"
PY="$PWD/.venv/bin/python"
work=$(mktemp -d)
label=bench-lynis
net=hs-bench-lynis
cleanup() { "$PY" -m lab molecule-destroy --label "$label" --network "$net" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

"$PY" -m lab molecule-create --label "$label" --network "$net" --out "$work/instances.json" --platforms \
  '[{"name":"lynis-d12","image":"debian12","address":"172.30.27.11","cluster_address":"172.30.37.11"},
    {"name":"lynis-d13","image":"debian13","address":"172.30.27.12","cluster_address":"172.30.37.12"}]' >/dev/null

"$PY" - "$work" <<'PYEOF'
import json, sys
work = sys.argv[1]
inst = json.load(open(f"{work}/instances.json"))
lines = ["[bench]"]
for i in inst:
    lines.append(f"{i['instance']} ansible_host={i['address']} ansible_user={i['user']} "
                 f"ansible_ssh_private_key_file={i['identity_file']} ansible_become=true "
                 "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'")
open(f"{work}/hosts", "w").write("\n".join(lines) + "\n")
PYEOF

cat > "$work/lynis.yml" <<'YEOF'
- name: Run Lynis
  hosts: bench
  gather_facts: false
  tasks:
    - name: Install Lynis
      ansible.builtin.apt:
        name: lynis
        update_cache: true
        install_recommends: false
    - name: Audit
      ansible.builtin.command: lynis audit system --quick --no-colors --no-log
      register: audit
      changed_when: false
    - name: Read the findings
      ansible.builtin.command: grep -E "^(suggestion|warning)\\[\\]=" /var/log/lynis-report.dat
      register: findings
      changed_when: false
      failed_when: false
    - name: Keep the report
      ansible.builtin.copy:
        content: "{{ audit.stdout }}\n{{ findings.stdout }}\n"
        dest: "{{ lookup('ansible.builtin.env', 'LYNIS_OUT') }}/{{ inventory_hostname }}.{{ lookup('ansible.builtin.env', 'LYNIS_PHASE') }}.txt"
        mode: "0644"
      delegate_to: localhost
      become: false
YEOF
cat > "$work/baseline.yml" <<'YEOF'
- name: Apply baseline
  hosts: bench
  roles:
    - role: hardened.stack.baseline
YEOF

LYNIS_OUT="$work" LYNIS_PHASE=before ansible-playbook -i "$work/hosts" "$work/lynis.yml" >"$work/run-before.log" || { tail -30 "$work/run-before.log"; exit 1; }
start=$(date +%s)
ansible-playbook -i "$work/hosts" "$work/baseline.yml" >"$work/run-baseline.log" || { tail -30 "$work/run-baseline.log"; exit 1; }
took=$(( $(date +%s) - start ))
LYNIS_OUT="$work" LYNIS_PHASE=after ansible-playbook -i "$work/hosts" "$work/lynis.yml" >"$work/run-after.log" || { tail -30 "$work/run-after.log"; exit 1; }

index() { grep -oE 'Hardening index : [0-9]+' "$1" | grep -oE '[0-9]+$'; }
echo "Lynis hardening index (lynis audit system --quick), baseline converge took ${took} s"
printf '%-10s %-8s %-7s %-6s\n' host lynis before after
for h in lynis-d12 lynis-d13; do
  ver=$(grep -oE 'Lynis [0-9.]+' "$work/$h.after.txt" | head -1 | cut -d' ' -f2)
  printf '%-10s %-8s %-7s %-6s\n' "$h" "$ver" "$(index "$work/$h.before.txt")" "$(index "$work/$h.after.txt")"
done
for h in lynis-d12 lynis-d13; do
  echo
  echo "Remaining findings on $h (test id | text):"
  grep -E '^(suggestion|warning)\[\]=' "$work/$h.after.txt" | cut -d'|' -f1-2 | sed 's/^/  /'
done
