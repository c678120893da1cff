"""The ansible-core versions the collection supports, each tested (make test-matrix).

`make test-matrix` installs the collection, then runs one session per ansible-core release in meta/runtime.yml's range: the unit tests and the
integration smoke test (async_wait + time_saved on the local inventory) run on each. The
sanity tests run once, in `make test`, on the newest core (ansible-test sanity of a core
checks the collection against that core's rules).
"""

from __future__ import annotations

import os

import nox

# The newest patch release of each supported minor version (meta/runtime.yml: >=2.17).
CORES = ["2.17.14", "2.18.19", "2.19.14"]
TOOLS = ["pytest==9.2.0", "pytest-mock==3.17.0", "jsonschema==4.26.0", "hypothesis==6.170.17"]

nox.options.sessions = ["matrix"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
@nox.parametrize("core", CORES, ids=CORES)
def matrix(session: nox.Session, core: str) -> None:
    session.install(f"ansible-core=={core}", *TOOLS)
    # The test runs' Python speed-ups, as make venv puts them in the project venv.
    session.run("python", "tests/python_speedups.py", "install")
    session.run("ansible", "--version")
    env = {
        "ANSIBLE_COLLECTIONS_PATH": f"{os.getcwd()}/.collections",
        "ANSIBLE_CONFIG": f"{os.getcwd()}/ansible.cfg",
    }
    # pytest-ansible (the project venv's) is not installed here: its addopts go.
    session.run(
        "pytest",
        "-q",
        "-o",
        "addopts=-ra --strict-markers",
        "-p",
        "no:cacheprovider",
        "tests/unit",
        "tests/integration/test_smoke.py",
        *session.posargs,
        env=env,
    )
