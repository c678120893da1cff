"""ansible-lint, with its syntax check in one ``ansible-playbook`` run instead of one per file.

ansible-lint runs ``ansible-playbook --syntax-check`` once for every playbook and role it
finds, and cannot be told not to (the ``syntax-check`` rule is unskippable). Each run pays
ansible-playbook's start-up (about 1 CPU-s here): in ``make test`` that was 137 runs and
192 CPU-s, 8 % of the whole suite's CPU. ``ansible-playbook --syntax-check`` takes several
playbooks in one run (ansible/ansible-lint#2078 proposes the same upstream).

This runs ansible-lint unchanged but for that phase. Every playbook and role that ansible-lint
would check goes to one ``ansible-playbook --syntax-check -vv`` run, with ansible-lint's own
environment and extra vars, the roles through one generated playbook (a play per role, the
one ansible-lint writes for each). If that run passes, every file passed. If it fails,
ansible-lint's own per-file check runs for every file, so a failure is reported exactly as
ansible-lint reports it (rule, file, line).

One run is not quite one check per file: ansible-playbook gives every playbook of a run the
plugins found beside each of them (``library/``, ``*_plugins/``, ``module_utils/``,
``collections/`` next to a playbook: ``add_all_plugin_dirs`` and
``AnsibleCollectionConfig.playbook_paths`` in ansible/cli/playbook.py). A playbook whose
directory has such plugins is therefore checked in a run of its own directory's playbooks,
so that no other playbook passes on them.

The same goes for the playbooks an ``import_playbook`` names: before it lints a playbook it
imports, ansible-lint asks ansible-compat's ``Runtime.has_playbook``, one
``ansible-playbook --syntax-check`` each (30 runs in this repo, about 30 CPU-s). At the first
such question this checks, in as few runs as `batches` allows, every playbook an
``import_playbook`` names by path under the current directory; when those runs pass, each
of them is answered "loads" at once. Any other, and all of them when a run fails, gets
ansible-compat's own check.

    python scripts/ansible_lint.py [ansible-lint options]     (scripts/lint)

Built on ansible-lint's ``Runner._map_syntax_check_workers`` (26.x, requirements.txt pins
it). When a later ansible-lint lacks it, this says so and lints with ansible-lint's own
per-file check.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HOOK = "_map_syntax_check_workers"
# `import_playbook: <path>` (with or without ansible.builtin.), quoted or not.
IMPORT = re.compile(
    r"^[ \t]*(?:-[ \t]+)?(?:ansible\.builtin\.)?import_playbook:[ \t]*[\"']?([^\"'\s#]+)", re.M
)
# The kinds ansible-lint syntax-checks (Runner._get_ansible_syntax_check_matches).
CHECKED = ("playbook", "role")
# What ansible-playbook takes from a playbook's directory for every playbook of the run.
BESIDE = ("library", "module_utils", "collections")


def plugins_beside(playbook: Path) -> str:
    """The playbook's directory if it holds plugins ansible-playbook would share, else ''."""
    folder = playbook.expanduser().resolve().parent
    shared = any((folder / name).is_dir() for name in BESIDE)
    return str(folder) if shared or any(p.is_dir() for p in folder.glob("*_plugins")) else ""


def batches(playbooks: Sequence[Path]) -> list[list[Path]]:
    """The playbooks in runs: first the one of all those without plugins beside them (maybe
    empty), then one per directory that has some, in the order met."""
    runs: dict[str, list[Path]] = {"": []}
    for path in playbooks:
        runs.setdefault(plugins_beside(path), []).append(path)
    return list(runs.values())


def role_play(path: Path) -> str:
    """The play ansible-lint writes to syntax-check one role."""
    return f"""
- name: Temporary playbook for role syntax check
  hosts: localhost
  tasks:
    - ansible.builtin.import_role:
        name: {path.expanduser()!s}
"""


def syntax_check_command(
    playbooks: Sequence[Path], roles_playbook: Path | None, extra_vars: dict[str, Any] | None
) -> list[str]:
    cmd = ["ansible-playbook", "--syntax-check", "-vv"]
    cmd += [str(path.expanduser()) for path in playbooks]
    if roles_playbook is not None:
        cmd.append(str(roles_playbook))
    if extra_vars:
        cmd += ["--extra-vars", json.dumps(extra_vars)]
    return cmd


def imported_playbooks(root: Path) -> list[Path]:
    """Every existing playbook an ``import_playbook`` under root names by path (no
    templated or collection names), outside hidden directories (.venv, .cache...)."""
    found: set[Path] = set()
    for path in sorted(root.rglob("*.y*ml")):
        if any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for name in IMPORT.findall(text):
            target = (path.parent / name).resolve()
            if "{{" not in name and target.is_file():
                found.add(target)
    return sorted(found)


def runs_pass(
    playbooks: Sequence[Path],
    env: dict[str, str],
    roles_playbook: Path | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> bool:
    """``ansible-playbook --syntax-check`` of the playbooks in `batches` (the roles playbook
    in the first, common, run): did every run pass?"""
    for number, run in enumerate(batches(playbooks)):
        with_roles = roles_playbook if number == 0 else None
        if not run and with_roles is None:
            continue
        cmd = syntax_check_command(run, with_roles, extra_vars)
        if subprocess.run(cmd, capture_output=True, text=True, check=False, env=env).returncode:
            return False
    return True


def batched_has_playbook(original: Callable[..., bool]) -> Callable[..., bool]:
    """Runtime.has_playbook, answered at once for the imported playbooks checked together."""
    loads: set[Path] | None = None

    def has_playbook(self: Any, playbook: str, *, basedir: Path | None = None) -> bool:
        nonlocal loads
        if loads is None:
            imported = imported_playbooks(Path.cwd())
            loads = set(imported) if runs_pass(imported, dict(self.environ)) else set()
        if (Path(basedir or ".") / playbook).resolve() in loads:
            return True
        return original(self, playbook, basedir=basedir)

    return has_playbook


def batch_passes(runner: Any, files: Sequence[Any]) -> bool:
    """``ansible-playbook --syntax-check`` over every playbook and role, in as few runs as
    `batches` allows (the roles in the common one): did every run pass?"""
    playbooks = [f.path for f in files if f.kind == "playbook"]
    roles = [f.path for f in files if f.kind == "role"]
    # ansible-lint's environment for its own check (ansiblelint/runner.py).
    env = runner.app.runtime.environ.copy()
    env["PYTHONWARNINGS"] = "ignore"
    env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] = "False"
    with tempfile.TemporaryDirectory(prefix="ansible-lint-syntax-") as tmp:
        roles_playbook = None
        if roles:
            roles_playbook = Path(tmp, "roles.yml")
            roles_playbook.write_text("---" + "".join(role_play(path) for path in roles))
        return runs_pass(playbooks, env, roles_playbook, runner.app.options.extra_vars)


def batched(original: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """Runner._map_syntax_check_workers, with one run for all files when they all pass."""

    def map_syntax_check_workers(
        self: Any, worker: Callable[[Any], list[Any]], files: list[Any]
    ) -> list[Any]:
        checked = [f for f in files if f.kind in CHECKED]
        if not checked or batch_passes(self, checked):
            return [[] for _unused in files]
        print(
            "ansible_lint.py: the syntax check of the files in batched runs failed; "
            "ansible-lint checks each file to say where",
            file=sys.stderr,
        )
        return original(self, worker, files)

    return map_syntax_check_workers


def install(runner_class: Any = None) -> bool:
    """Batch the syntax check of ansible-lint's Runner (or of runner_class) in this process;
    False if this ansible-lint cannot."""
    if runner_class is None:
        runner_class = importlib.import_module("ansiblelint.runner").Runner
    original = getattr(runner_class, HOOK, None)
    if original is None:
        print(
            f"ansible_lint.py: this ansible-lint has no Runner.{HOOK}: "
            "one syntax check per file, as ansible-lint does alone",
            file=sys.stderr,
        )
        return False
    setattr(runner_class, HOOK, batched(original))
    return True


def install_has_playbook(runtime_class: Any = None) -> bool:
    """Batch ansible-compat's Runtime.has_playbook (or runtime_class's) in this process;
    False if it has none."""
    if runtime_class is None:
        runtime_class = importlib.import_module("ansible_compat.runtime").Runtime
    original = getattr(runtime_class, "has_playbook", None)
    if original is None:
        print(
            "ansible_lint.py: this ansible-compat has no Runtime.has_playbook: "
            "one syntax check per imported playbook",
            file=sys.stderr,
        )
        return False
    runtime_class.has_playbook = batched_has_playbook(original)
    return True


def main() -> None:
    from ansiblelint.__main__ import _run_cli_entrypoint

    install()
    install_has_playbook()
    sys.argv[0] = "ansible-lint"
    _run_cli_entrypoint()


if __name__ == "__main__":
    main()
