"""scripts/ansible_lint.py for real: when the syntax check of all files in one ansible-playbook
run fails, ansible-lint's own per-file check says which file, as ansible-lint alone does.
(`make lint` runs it on the whole repo; tests/unit/test_ansible_lint_wrapper.py fakes
ansible-playbook to count the runs.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, ansible_env, run

pytestmark = pytest.mark.integration

PLAY = """---
- name: {name}
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say hello
      {module}:
        msg: hello
"""


def test_a_syntax_error_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(PLAY.format(name="Good", module="ansible.builtin.debug"))
    (tmp_path / "bad.yml").write_text(PLAY.format(name="Bad", module="ansible.builtin.debugx"))
    result = run(
        [sys.executable, str(REPO / "scripts/ansible_lint.py"), "--offline", "good.yml", "bad.yml"],
        env=ansible_env(NO_COLOR="1"),
        cwd=tmp_path,
    )
    assert result.rc == 2, result.output
    assert "syntax-check[unknown-module]" in result.output
    assert "ansible.builtin.debugx" in result.output
    assert "bad.yml:6:7" in result.output
    assert "good.yml" not in result.output
    assert "checks each file to say where" in result.stderr


def test_an_imported_playbook_that_fails_its_syntax_check_fails_the_lint(tmp_path: Path) -> None:
    """The imported playbooks are checked together first (has_playbook); one that fails is
    reported by ansible-lint's own checks, with its file and line."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.yml").write_text(
        "---\n- name: Main\n  ansible.builtin.import_playbook: sub/bad.yml\n"
    )
    bad = tmp_path / "sub" / "bad.yml"
    bad.write_text(PLAY.format(name="Bad", module="ansible.builtin.debugx"))
    argv = [sys.executable, str(REPO / "scripts/ansible_lint.py"), "--offline", "main.yml"]
    result = run(argv, env=ansible_env(NO_COLOR="1"), cwd=tmp_path)
    assert result.rc == 2, result.output
    assert "sub/bad.yml:6:7" in result.output
    assert "Failed to load sub/bad.yml playbook due to failing syntax check" in result.output
    bad.write_text(PLAY.format(name="Good", module="ansible.builtin.debug"))
    result = run(argv, env=ansible_env(NO_COLOR="1"), cwd=tmp_path)
    assert result.rc == 0, result.output
    assert "2 files processed" in result.output
