"""The execution environment definition, checked offline with ansible-builder.

Building the image needs a container engine and a base image pulled from a registry, which
this machine has not (docs/running-at-scale.md gives the command). What can run here:

- `ansible-builder create` on the root execution-environment.yml writes the build context:
  the Containerfile, the collection tarball and the Galaxy requirements it installs;
- the collection as the build installs it, introspected the way the build does
  (`ansible-builder introspect`, and the context's own introspect.py): the Python and system
  packages it adds come from meta/execution-environment.yml, never from the repo's
  development requirements.txt.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, VENV_BIN, ansible_env, run

pytestmark = pytest.mark.integration

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
# What the collection needs in an EE (meta/ee-bindep.txt), as introspection reports it.
SYSTEM = [
    "openssh-clients [platform:rpm]  # from collection tplabs.async_tasks",
    "openssh-client [platform:dpkg]  # from collection tplabs.async_tasks",
]


def pins() -> dict[str, str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


@pytest.fixture(scope="module")
def builder() -> str:
    exe = shutil.which("ansible-builder", path=str(VENV_BIN))
    if exe is None:
        pytest.skip("ansible-builder is not installed: run `make venv` (requirements.txt pins it)")
    return exe


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the EE file with the collection tarball where it expects it."""
    src = tmp_path_factory.mktemp("ee") / "src"
    (src / "build" / "ee").mkdir(parents=True)
    shutil.copy(REPO / "execution-environment.yml", src)
    built = run(
        [
            "ansible-galaxy",
            "collection",
            "build",
            "--force",
            "--output-path",
            str(src / "build" / "ee"),
        ],
        env=ansible_env(),
    )
    assert built.rc == 0, built.output
    assert (src / "build" / "ee" / TARBALL).is_file(), built.output
    return src


@pytest.fixture(scope="module")
def installed(source: Path) -> Path:
    """The collection installed from the tarball, as the build's Galaxy stage does."""
    dest = source.parent / "collections"
    done = run(
        [
            "ansible-galaxy",
            "collection",
            "install",
            "--offline",
            # --force: a copy in the configured collection paths would make it a no-op.
            "--force",
            "-p",
            str(dest),
            str(source / "build" / "ee" / TARBALL),
        ],
        env=ansible_env(),
    )
    assert done.rc == 0, done.output
    assert (dest / "ansible_collections" / "tplabs" / "async_tasks" / "MANIFEST.json").is_file()
    return dest


def test_definition_is_version_3_and_names_the_pins() -> None:
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={pins()['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={pins()['ansible-runner']}"
    # The tarball the build copies in is the version galaxy.yml builds.
    assert ee["additional_build_files"] == [{"src": f"build/ee/{TARBALL}", "dest": "collections"}]
    assert deps["galaxy"]["collections"] == [
        {"name": f"/build/collections/{TARBALL}", "type": "file"}
    ]
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {
        "python": "meta/ee-requirements.txt",
        "system": "meta/ee-bindep.txt",
    }


@pytest.fixture(scope="module")
def context(builder: str, source: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`ansible-builder create`: the build context, written offline."""
    path = source.parent / "context"
    made = subprocess.run(
        [
            builder,
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            str(path),
            "--output-filename",
            "Containerfile",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return made, path


def test_create_writes_the_build_context(context: tuple, source: Path) -> None:
    made, context_dir = context
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Complete! The build context can be found at" in made.stdout
    containerfile = (context_dir / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="docker.io/redhat/ubi9:latest"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.12"' in containerfile
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.MULTILINE)
    assert refs and refs.group(1).split() == [
        f"ansible-core=={pins()['ansible-core']}",
        f"ansible-runner=={pins()['ansible-runner']}",
    ]
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile
    copied = context_dir / "_build" / "collections" / TARBALL
    assert copied.read_bytes() == (source / "build" / "ee" / TARBALL).read_bytes()
    requirements = yaml.safe_load((context_dir / "_build" / "requirements.yml").read_text())
    assert requirements == {
        "collections": [{"name": f"/build/collections/{TARBALL}", "type": "file"}]
    }


def introspected(output: str) -> dict:
    """ansible-builder introspect prints a comment line, then YAML."""
    return yaml.safe_load(output.split("\n", 1)[1])


def test_introspect_reports_the_collection_needs(builder: str, installed: Path) -> None:
    done = subprocess.run(
        [builder, "introspect", "--sanitize", str(installed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = introspected(done.stdout)
    assert found["python"] == [], "the collection needs no Python package beyond ansible-core"
    assert found["system"] == SYSTEM


def test_the_build_would_not_install_the_development_tools(context: tuple, installed: Path) -> None:
    """The build stage's own introspect.py: without meta/execution-environment.yml it would
    fall back to the collection's requirements.txt (molecule, pytest, ruff...)."""
    made, context_dir = context
    assert made.returncode == 0, made.stdout + made.stderr
    script = context_dir / "_build" / "scripts" / "introspect.py"
    out = context_dir.parent / "introspect"
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "introspect",
            str(installed),
            f"--write-pip={out / 'requirements.txt'}",
            f"--write-bindep={out / 'bindep.txt'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pip = (out / "requirements.txt").read_text() if (out / "requirements.txt").exists() else ""
    assert not re.search(r"molecule|pytest|ruff|nox", pip), pip
    assert (out / "bindep.txt").read_text().splitlines() == [
        line.split("  #", maxsplit=1)[0] + "  # from collection tplabs.async_tasks"
        for line in SYSTEM
    ]
