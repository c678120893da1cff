"""scripts/ansible_lint.py: ansible-lint's syntax check of every file in one ansible-playbook
run, and ansible-lint's own per-file check whenever that run fails.

ansible-playbook is faked here (subprocess.run); tests/integration/test_collection.py runs the
wrapper for real on a broken playbook, and `make lint` on the whole repo.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers import REPO, load_file

wrapper = load_file(REPO / "scripts" / "ansible_lint.py", "ansible_lint_wrapper")


class FakeRunner:
    """What the wrapper reads of ansible-lint's Runner, and its per-file check."""

    def __init__(self, extra_vars: dict[str, Any] | None = None) -> None:
        self.app = SimpleNamespace(
            runtime=SimpleNamespace(environ={"ANSIBLE_ROLES_PATH": "roles", "HOME": "/root"}),
            options=SimpleNamespace(extra_vars=extra_vars),
        )
        self.per_file: list[list[Any]] = []

    def _map_syntax_check_workers(self, worker: Any, files: list[Any]) -> list[Any]:
        self.per_file.append(files)
        return [worker(f) for f in files]


def lintable(kind: str, path: str) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, path=Path(path))


FILES = [
    lintable("playbook", "playbooks/step1.yml"),
    lintable("role", "roles/fire_and_forget"),
    lintable("pattern", "extensions/molecule"),
    lintable("playbook", "molecule/step1/converge.yml"),
    lintable("role", "roles/timer"),
]


@pytest.fixture
def ansible_playbook(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Fake ansible-playbook runs. `calls`: each run's command, environment and roles
    playbook; `status`: the exit codes of the next runs (0 once none is left)."""
    fake = SimpleNamespace(calls=[], status=[])

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        roles = [arg for arg in cmd if arg.endswith("/roles.yml")]
        fake.calls.append(
            {
                "cmd": cmd,
                "env": kwargs["env"],
                "roles": Path(roles[0]).read_text() if roles else "",
            }
        )
        return subprocess.CompletedProcess(cmd, fake.status.pop(0) if fake.status else 0)

    monkeypatch.setattr(wrapper.subprocess, "run", run)
    return fake


def install(runner_class: type) -> None:
    assert wrapper.install(runner_class) is True


def test_one_run_checks_every_playbook_and_role(ansible_playbook):
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    runner = runner_class()
    checked: list[Any] = []
    assert runner._map_syntax_check_workers(checked.append, FILES) == [[]] * len(FILES)
    # One ansible-playbook, no per-file worker.
    assert len(ansible_playbook.calls) == 1 and not checked and not runner.per_file
    cmd = ansible_playbook.calls[0]["cmd"]
    assert cmd[:3] == ["ansible-playbook", "--syntax-check", "-vv"]
    assert cmd[3:5] == ["playbooks/step1.yml", "molecule/step1/converge.yml"]
    assert cmd[5].endswith("/roles.yml") and len(cmd) == 6
    # A play per role, as ansible-lint writes for one; patterns are not syntax-checked.
    roles = ansible_playbook.calls[0]["roles"]
    assert roles.startswith("---\n")
    assert roles.count("- name: Temporary playbook for role syntax check") == 2
    assert "name: roles/fire_and_forget\n" in roles and "name: roles/timer\n" in roles
    assert "extensions" not in " ".join(cmd) + roles


def test_environment_and_extra_vars_are_ansible_lints(ansible_playbook):
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    runner_class(extra_vars={"lab_state": "present"})._map_syntax_check_workers(
        lambda f: [], FILES[:1]
    )
    call = ansible_playbook.calls[0]
    assert call["cmd"][-2:] == ["--extra-vars", '{"lab_state": "present"}']
    assert call["env"]["ANSIBLE_ROLES_PATH"] == "roles"
    assert call["env"]["PYTHONWARNINGS"] == "ignore"
    assert call["env"]["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] == "False"
    assert call["roles"] == ""  # no role, no roles playbook


def test_a_failed_run_hands_every_file_to_ansible_lints_own_check(ansible_playbook, capsys):
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    runner = runner_class()
    ansible_playbook.status.append(4)
    result = runner._map_syntax_check_workers(lambda f: [f"match in {f.path}"], FILES)
    assert result == [[f"match in {f.path}"] for f in FILES]
    assert runner.per_file == [FILES]
    assert len(ansible_playbook.calls) == 1
    assert "checks each file to say where" in capsys.readouterr().err


def test_nothing_to_check_runs_nothing(ansible_playbook):
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    runner = runner_class()
    assert runner._map_syntax_check_workers(lambda f: [], FILES[2:3]) == [[]]
    assert ansible_playbook.calls == [] and runner.per_file == []


def test_an_ansible_lint_without_the_hook_is_said_and_left_alone(capsys):
    runner_class = type("Runner", (), {})
    assert wrapper.install(runner_class) is False
    assert not hasattr(runner_class, wrapper.HOOK)
    assert "no Runner._map_syntax_check_workers" in capsys.readouterr().err


def test_playbooks_beside_plugins_get_a_run_of_their_own(ansible_playbook, tmp_path):
    """ansible-playbook gives every playbook of a run the plugins beside each of them: a
    playbook must not pass on another directory's library/ or *_plugins/."""
    for folder, plugins in (("plain", ""), ("lib", "library"), ("filters", "filter_plugins")):
        (tmp_path / folder / (plugins or "templates")).mkdir(parents=True)
    files = [
        lintable("playbook", f"{tmp_path}/lib/a.yml"),
        lintable("playbook", f"{tmp_path}/plain/b.yml"),
        lintable("role", "roles/timer"),
        lintable("playbook", f"{tmp_path}/filters/c.yml"),
        lintable("playbook", f"{tmp_path}/plain/d.yml"),
        lintable("playbook", f"{tmp_path}/lib/e.yml"),
    ]
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    assert runner_class()._map_syntax_check_workers(lambda f: [], files) == [[]] * len(files)
    runs = [call["cmd"][3:] for call in ansible_playbook.calls]
    assert runs[0][:2] == [f"{tmp_path}/plain/b.yml", f"{tmp_path}/plain/d.yml"]
    assert runs[0][2].endswith("/roles.yml") and len(runs[0]) == 3
    assert runs[1:] == [
        [f"{tmp_path}/lib/a.yml", f"{tmp_path}/lib/e.yml"],
        [f"{tmp_path}/filters/c.yml"],
    ]
    assert [bool(call["roles"]) for call in ansible_playbook.calls] == [True, False, False]


def test_a_failed_run_of_several_stops_there(ansible_playbook, tmp_path):
    (tmp_path / "lib" / "library").mkdir(parents=True)
    files = [
        lintable("playbook", "playbooks/step1.yml"),
        lintable("playbook", f"{tmp_path}/lib/a.yml"),
    ]
    runner_class = type("Runner", (FakeRunner,), {})
    install(runner_class)
    runner = runner_class()
    ansible_playbook.status.append(4)
    assert runner._map_syntax_check_workers(lambda f: ["seen"], files) == [["seen"], ["seen"]]
    assert len(ansible_playbook.calls) == 1 and runner.per_file == [files]


def imports_tree(root: Path) -> None:
    """site.yml imports two playbooks by path and one of a collection; a hidden copy is
    ignored."""
    (root / "plays").mkdir()
    (root / ".venv").mkdir()
    for name in ("a.yml", "b.yml", "c.yml"):
        (root / "plays" / name).write_text("---\n- name: Play\n  hosts: all\n  tasks: []\n")
    (root / "site.yml").write_text(
        "---\n- name: A\n  ansible.builtin.import_playbook: plays/a.yml\n"
        "- import_playbook: 'plays/b.yml'\n"
        "- ansible.builtin.import_playbook: ns.coll.site\n"
        '- ansible.builtin.import_playbook: "{{ which }}.yml"\n'
    )
    (root / ".venv" / "x.yml").write_text("- import_playbook: ../plays/c.yml\n")


ENVIRON = {"ANSIBLE_COLLECTIONS_PATH": "/c"}


class FakeRuntime:
    """What the wrapper reads of ansible-compat's Runtime, and its own check."""

    def __init__(self) -> None:
        self.environ = dict(ENVIRON)
        self.asked: list[str] = []

    def has_playbook(self, playbook: str, *, basedir: Path | None = None) -> bool:
        self.asked.append(playbook)
        return False


def test_imported_playbooks_are_found_by_path(tmp_path):
    imports_tree(tmp_path)
    assert wrapper.imported_playbooks(tmp_path) == [
        (tmp_path / "plays" / "a.yml").resolve(),
        (tmp_path / "plays" / "b.yml").resolve(),
    ]


def test_imported_playbooks_are_checked_in_one_run(ansible_playbook, tmp_path, monkeypatch):
    imports_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    runtime_class = type("Runtime", (FakeRuntime,), {})
    assert wrapper.install_has_playbook(runtime_class) is True
    runtime = runtime_class()
    assert runtime.has_playbook(str(tmp_path / "plays" / "a.yml")) is True
    assert runtime.has_playbook("plays/b.yml", basedir=tmp_path) is True
    # Not imported by path (a collection's playbook): ansible-compat's own check.
    assert runtime.has_playbook("/c/ansible_collections/ns/coll/playbooks/site.yml") is False
    assert runtime.asked == ["/c/ansible_collections/ns/coll/playbooks/site.yml"]
    assert len(ansible_playbook.calls) == 1
    call = ansible_playbook.calls[0]
    assert call["cmd"][3:] == [str(tmp_path / "plays" / f) for f in ("a.yml", "b.yml")]
    assert call["env"] == ENVIRON


def test_a_failed_run_leaves_each_imported_playbook_to_its_own_check(
    ansible_playbook, tmp_path, monkeypatch
):
    imports_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    runtime_class = type("Runtime", (FakeRuntime,), {})
    wrapper.install_has_playbook(runtime_class)
    runtime = runtime_class()
    ansible_playbook.status.append(4)
    assert runtime.has_playbook("plays/a.yml", basedir=tmp_path) is False
    assert runtime.has_playbook("plays/b.yml", basedir=tmp_path) is False
    assert runtime.asked == ["plays/a.yml", "plays/b.yml"]
    assert len(ansible_playbook.calls) == 1


def test_an_ansible_compat_without_has_playbook_is_said_and_left_alone(capsys):
    runtime_class = type("Runtime", (), {})
    assert wrapper.install_has_playbook(runtime_class) is False
    assert not hasattr(runtime_class, "has_playbook")
    assert "no Runtime.has_playbook" in capsys.readouterr().err
