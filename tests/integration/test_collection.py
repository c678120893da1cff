"""The collection builds and installs offline, and ansible-doc sees what it ships."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, ansible_env, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built once for the module's tests."""
    out = tmp_path_factory.mktemp("build")
    built = run(
        ["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out), str(REPO)]
    )
    assert built.rc == 0, built.output
    (path,) = out.glob("tplabs-async_tasks-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("collections")
    inst = run(
        [
            "ansible-galaxy",
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            str(dest),
            str(tarball),
        ],
        env=ansible_env(ANSIBLE_COLLECTIONS_PATH=str(dest)),
    )
    assert inst.rc == 0, inst.output
    return dest


def test_tarball_leaves_out_tooling(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names
    for private in (".venv", ".nox", ".collections", ".cache", ".git", ".ci", ".config"):
        assert not any(n == private or n.startswith(private + "/") for n in names), private


def test_installed_collection_is_listed(installed: Path) -> None:
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=str(installed))
    listed = run(
        ["ansible-galaxy", "collection", "list", "tplabs.async_tasks", "--format", "json"], env=env
    )
    assert listed.rc == 0, listed.output
    versions = {
        name: info["version"]
        for path in json.loads(listed.stdout).values()
        for name, info in path.items()
    }
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert versions.get("tplabs.async_tasks") == galaxy["version"]


@pytest.mark.parametrize(
    ("plugin_type", "expected"),
    [
        ("module", "tplabs.async_tasks.async_wait"),
        ("callback", "tplabs.async_tasks.time_saved"),
    ],
)
def test_ansible_doc_lists_plugins(installed: Path, plugin_type: str, expected: str) -> None:
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=str(installed))
    listed = run(["ansible-doc", "-t", plugin_type, "-l", "tplabs.async_tasks", "--json"], env=env)
    assert listed.rc == 0, listed.output
    assert expected in json.loads(listed.stdout)
    shown = run(["ansible-doc", "-t", plugin_type, expected], env=env)
    assert shown.rc == 0, shown.output
    assert "EXAMPLES" in shown.stdout or plugin_type == "callback"


def test_roles_are_installed(installed: Path) -> None:
    roles = installed / "ansible_collections" / "tplabs" / "async_tasks" / "roles"
    # Every role, each with its meta/argument_specs.yml (the guides' step 10).
    names = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    assert "lab" in names and "challenge" in names, names
    for name in names:
        assert (roles / name / "meta" / "argument_specs.yml").is_file(), name
