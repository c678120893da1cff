# tplabs.async_tasks: `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

# The venv's Python: the distribution's /usr/bin/python3 when it is 3.11 or later, else
# python3 from PATH (make PYTHON=... chooses). A distribution's build is optimised (PGO, LTO);
# pyenv builds without by default, and Ansible then spends 10-25 % more CPU (2 cores,
# 2026-11-29: a play on three local hosts 8.83 against 7.13 CPU-s, a syntax check 1.37
# against 1.23; benchmarks/interpreter.py, benchmarks/README.md).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
COLLECTIONS := $(CURDIR)/.collections
INSTALLED := $(COLLECTIONS)/ansible_collections/tplabs/async_tasks
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
STAGE := scripts/stage
# make demo: lab step 5 with short jobs (the lab's own values are the role defaults).
DEMO_ARGS ?= -e throttle_seconds=5 -e throttle_delay=1

.PHONY: help venv install dev check demo test test-matrix stress lint sanity unit integration molecule molecule-run incus lab lab-down bench clean runner-demo

help:
	@echo "make demo      set up .venv + the collection, run the main job on 3 local hosts"
	@echo "make test      lint, sanity, unit, integration and Molecule on Incus"
	@echo "make test-matrix  unit + smoke tests on each supported ansible-core"
	@echo "make stress    load-sensitive Molecule scenarios, 3 rounds under full CPU load"
	@echo "make lab       create the Incus lab (host1..host3); make lab-down deletes it"
	@echo "               (LAB_TRANSPORT=ssh: also over SSH, inventories/incus-ssh.yml)"
	@echo "make bench     run the benchmarks (benchmarks/README.md)"
	@echo "make runner-demo  lab step 5 through ansible-runner (artifacts in build/runner-demo)"
	@echo "make check STEP=<0-9|challenge> [FILE=answer] [INVENTORY=inventories/incus.yml] [LANG=fr]"
	@echo "               grade a lab step on the hosts (exercises/README.md)"
	@echo "make dev       roles and plugins edits count at once (no make install)"

$(VENV)/.installed: requirements.txt
	@[ -n "$(PYTHON)" ] && command -v $(PYTHON) >/dev/null || { echo "python3 3.11 or later is required" >&2; exit 1; }
	if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then
	  echo "python3-venv missing: installing it with apt-get"; apt-get update -qq && apt-get install -y -qq python3-venv
	fi
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# What the test runs change in the Python processes they start (tests/python_speedups.py: a
# bytecode cache for AnsiballZ payloads, the GC frozen at the first fork): in the venv's
# site-packages, imported at start-up only when TPLABS_ZIPIMPORT_CACHE or TPLABS_GC_FREEZE
# is set (tests/conftest.py sets both).
$(VENV)/.python-speedups: tests/python_speedups.py $(VENV)/.installed
	$(BIN)/python tests/python_speedups.py install
	touch $@

venv: $(VENV)/.installed $(VENV)/.python-speedups

install: venv
	$(STAGE) install -- scripts/install-collection $(COLLECTIONS)

# make dev: ansible-playbook run from the repo root finds tplabs.async_tasks in the work tree
# (ansible.cfg looks in .cache/collections first), so an edit counts at once.
dev: venv
	mkdir -p .cache/collections/ansible_collections/tplabs
	ln -sfn $(CURDIR) .cache/collections/ansible_collections/tplabs/async_tasks

# make check STEP=3 [FILE=exercises/answers/step3.yml] [INVENTORY=...] [LANG=fr]: run the
# answer (default: the reference playbook) against the lab and grade it on the hosts.
INVENTORY ?= inventories/local.yml
check: venv dev
	@[ -n "$(STEP)" ] || { echo "usage: make check STEP=<0-9|challenge> [FILE=...] [INVENTORY=...]" >&2; exit 2; }
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections $(BIN)/python -m lab.checker "$(STEP)" --file "$(FILE)" --inventory "$(INVENTORY)"

demo: install
	mkdir -p reports
	ANSIBLE_CALLBACKS_ENABLED=tplabs.async_tasks.time_saved \
	ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=reports/demo.json \
	ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=reports/demo-timeline.html \
	  ansible-playbook playbooks/step5.yml $(DEMO_ARGS)
	@echo
	@echo "Timeline of this run: reports/demo-timeline.html (JSON: reports/demo.json)"
	@echo "Next: activate the venv and run the lab's steps yourself:"
	@echo "  source $(VENV)/bin/activate"
	@echo "  ansible-playbook playbooks/step5.yml"

lint: install
	$(STAGE) lint -- scripts/lint

sanity: install
	$(STAGE) sanity -- scripts/sanity

unit: install
	$(STAGE) unit -- pytest -q tests/unit

# Integration test files run side by side (most of their time is jobs sleeping on the
# hosts); the tests of one file stay together, in order, on one worker, except the lanes
# tests/integration/lanes.py cuts test_steps.py into (tests/integration/conftest.py).
# Each test's time goes to reports/integration.xml (JUnit) and the slowest are listed: what
# to look at when the stage grows. 3 workers: on 2 cores the stage is CPU-bound all along
# with 3 or 4 (idle only in its last ~30 s), and a fourth only adds load (2026-11-29: 4
# workers 688.4 s and 1,074.1 CPU-s, 662.9 s and 1,023.3 alone, 676.6-691.8 s in make test;
# 3 workers 636.7 s and 992.6 alone, 651.7 s and 1,025.6, 578.3 s and 899.5 in make test).
INTEGRATION_WORKERS ?= 3
INTEGRATION := pytest -q -n $(INTEGRATION_WORKERS) --dist loadfile --durations=15 --junitxml=reports/integration.xml tests/integration
# Molecule: per-scenario seconds and CPU in reports/molecule.xml (tests/molecule).
MOLECULE := pytest -q --junitxml=reports/molecule.xml tests/molecule
integration: install
	mkdir -p reports
	$(STAGE) integration -- $(INTEGRATION)

incus:
	$(STAGE) incus-setup -- scripts/incus-setup.sh

molecule: incus molecule-run

# The load-sensitive Molecule scenarios, three rounds with every core busy (scripts/stress).
stress: install incus
	$(STAGE) stress -- scripts/stress

# Unit tests and the integration smoke test on each supported ansible-core (noxfile.py).
test-matrix: install
	$(STAGE) test-matrix -- nox -s matrix

# scripts/test: integration in the foreground, with the Incus set-up (about 7 min on a
# fresh machine) beside it, then Molecule; lint, sanity and unit from the start at the lowest
# priority, on the CPU the other stages leave (every stage at once on 4 cores or more);
# background logs printed at the end. The suite is bound by CPU on a small machine.
test: venv
	scripts/test "$(INTEGRATION)" "$(MOLECULE)"

molecule-run: install
	mkdir -p reports
	$(STAGE) molecule -- $(MOLECULE)

# make lab LAB_TRANSPORT=ssh: the same lab, also reachable over SSH (inventories/incus-ssh.yml).
LAB_TRANSPORT ?= incus
lab: install incus
	ansible-playbook playbooks/step0.yml -i inventories/incus.yml -e lab_transport=$(LAB_TRANSPORT)
	@echo "Lab ready: ansible-playbook -i inventories/$(if $(filter ssh,$(LAB_TRANSPORT)),incus-ssh,incus).yml playbooks/step5.yml"

lab-down: install
	ansible-playbook playbooks/lab_down.yml -i inventories/incus.yml -e lab_transport=$(LAB_TRANSPORT)

# Lab step 5 through ansible-runner (as AWX runs it), in build/runner-demo; artifacts there.
runner-demo: install
	scripts/runner-demo

bench: install
	python benchmarks/async_wait.py
	python benchmarks/callback_overhead.py
	python benchmarks/async_launch.py
	python benchmarks/ssh_scale.py

clean:
	rm -rf build $(COLLECTIONS) .cache reports
