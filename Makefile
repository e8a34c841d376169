# hardened.stack — the two commands users run, and what they need.
#   make lab       venv + container engine + base images, lab hosts from inventories/lab,
#                  site.yml against them, endpoints and health
#   make test      venv + everything the tests need, then the whole suite (tests/run.py)
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# /usr/bin first: Debian's docker client matches the engine's API (see DEVELOPERS.md).
export PATH := $(VENV)/bin:/usr/bin:/usr/sbin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export PYTHONUNBUFFERED := 1
LAB_INVENTORY ?= inventories/lab
# Extra arguments of `python -m lab up`, e.g. LAB_UP_ARGS=--ipv6 (dual-stack cluster network).
LAB_UP_ARGS ?=
SCENARIO ?= pki

.PHONY: help venv collection-link engine images ee lab-ee lab lab-up lab-converge lab-report lab-exposure lab-leaks lab-job-scoped lab-down test molecule clean

help:
	@echo "make lab       bring up the lab from $(LAB_INVENTORY) and converge site.yml"
	@echo "make lab-exposure  what answers from outside the stack and between members (issue 15)"
	@echo "make lab-job-scoped the job-scoped secrets recipe (docs/secrets.md) run against the lab: 0 changed"
	@echo "make lab-leaks     no secret in a -v --check --diff rerun (0 changed) or a process list (issue 16)"
	@echo "make ee        build the AWX execution environment image hardened-stack-ee:<version> (lab/ee.py)"
	@echo "make lab-ee    converge the lab through the execution environment, then a rerun: 0 changed"
	@echo "make lab-down  remove the lab hosts, networks and /etc/hosts names"
	@echo "make lab LAB_UP_ARGS=--ipv6   the lab with a dual-stack cluster network"
	@echo "make test      lint, unit, sanity, build and Molecule (what CI runs)"
	@echo "make molecule SCENARIO=pki   one Molecule scenario"

# The controller venv (pinned). python3-venv is installed on Debian when missing.
$(VENV)/.stamp: requirements.txt requirements-dev.txt
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { echo "installing python3-venv"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp collection-link

# Run from a checkout: the collection is found as ansible_collections/hardened/stack.
collection-link:
	@mkdir -p .build/collections/ansible_collections/hardened
	@ln -sfn ../../../.. .build/collections/ansible_collections/hardened/stack

engine: venv
	$(PY) -m lab engine

images: engine
	$(PY) -m lab images

lab-up: images
	$(PY) -m lab up -i $(LAB_INVENTORY) $(LAB_UP_ARGS)

lab-converge:
	ansible-playbook -i $(LAB_INVENTORY) site.yml $(ANSIBLE_ARGS)

lab-report:
	$(PY) -m lab report -i $(LAB_INVENTORY)

# The converge log is kept in .lab/ (no secret reaches it: every secret task is no_log).
lab: lab-up
	@mkdir -p .lab; start=$$(date +%s); \
	  set -o pipefail; $(MAKE) --no-print-directory lab-converge 2>&1 | tee .lab/converge.log; \
	  rc=$$?; echo "converge: $$(( $$(date +%s) - start )) s, changed tasks: $$(awk '/ changed=/ {split($$0,a,"changed="); split(a[2],b," "); s+=b[1]} END {print s+0}' .lab/converge.log)"; \
	  exit $$rc
	$(MAKE) --no-print-directory lab-report

# nmap from a container in no inventory group on each lab network, and every host to every
# other, against the port map and the firewall's rules; exit 1 on a hole (lab/exposure.py).
lab-exposure: collection-link
	$(PY) -m lab exposure -i $(LAB_INVENTORY)

# No secret in `site.yml -v --check --diff` (0 changed) or in any host's process list (lab/leaks.py).
lab-leaks: collection-link
	$(PY) -m lab leaks -i $(LAB_INVENTORY)

# The job-scoped recipe of docs/secrets.md (AWX-style credential, directories of one job), run as
# written against the converged lab: exit 0, nothing changed, nothing left (lab/jobscoped.py).
lab-job-scoped: collection-link
	$(PY) -m lab job-scoped -i $(LAB_INVENTORY)

# The AWX execution environment, built here without a registry or Galaxy (lab/ee.py): the
# collection's tarball, its dependencies as offline artifacts, `ansible-builder build` (docker).
ee: venv
	$(PY) -m lab.ee build

# hardened.stack.site from the EE image (ansible-navigator, EE mode) against the lab, from a
# directory holding only the tarball and a copy of the inventory: converge, then 0 changed.
lab-ee: ee
	$(PY) -m lab.ee lab -i $(LAB_INVENTORY)

lab-down: venv
	$(PY) -m lab down -i $(LAB_INVENTORY)

test: images
	$(PY) tests/run.py $(STAGES)

molecule: images
	molecule test -s $(SCENARIO)

clean:
	rm -rf .build tests/output .pytest_cache .ruff_cache
