"""What the test runs change in the Python processes they start (tests/python_speedups.py).

The bytecode cache for zip imports: a module imported twice from a zip is compiled once; the
code run is its source's, under this zip's path; a changed source or a damaged cache entry
is compiled again; unset, Python's own zipimport. The GC freeze: at the first fork only,
objects created afterwards still collected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# Imports pkg.mod from the zip in argv[1]: prints what was compiled from the zip, the value
# the module computes, its __file__ and the file name its functions' tracebacks would show.
PROBE = """
import builtins, json, sys
compiled = []
_compile = builtins.compile
def counting(source, filename, *args, **kwargs):
    if ".zip" in str(filename):
        compiled.append(str(filename).rpartition(".zip/")[2])
    return _compile(source, filename, *args, **kwargs)
builtins.compile = counting
sys.path.insert(0, sys.argv[2])
import os, python_speedups
python_speedups.install_zipimport_cache(os.environ.get("TPLABS_ZIPIMPORT_CACHE", ""))
sys.path.insert(0, sys.argv[1])
import pkg.mod
print(json.dumps({
    "compiled": compiled,
    "value": pkg.mod.value(),
    "file": pkg.mod.__file__,
    "code_file": pkg.mod.value.__code__.co_filename,
    "hooked": any(getattr(h, "cache_directory", None) for h in sys.path_hooks),
}))
"""


def make_zip(path: Path, value: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/mod.py", f"def value():\n    return {value}\n")
    return path


def probe(archive: Path, cache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPLABS_")}
    if cache is not None:
        env["TPLABS_ZIPIMPORT_CACHE"] = str(cache)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(archive), str(REPO / "tests")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_second_import_is_not_compiled_and_runs_the_same_code(tmp_path: Path, cache: Path) -> None:
    first = probe(make_zip(tmp_path / "one.zip", 1), cache)
    assert first["hooked"]
    assert sorted(first["compiled"]) == ["pkg/__init__.py", "pkg/mod.py"]
    assert len(list(cache.iterdir())) == 2
    # Another zip, same sources (as each AnsiballZ payload is): nothing compiled.
    second = probe(make_zip(tmp_path / "two.zip", 1), cache)
    assert second["compiled"] == []
    assert second["value"] == 1
    # The names are this zip's, as zipimport gives them.
    assert second["file"] == str(tmp_path / "two.zip" / "pkg" / "mod.py")
    assert second["code_file"] == second["file"]


def test_a_changed_source_is_compiled_again(tmp_path: Path, cache: Path) -> None:
    probe(make_zip(tmp_path / "one.zip", 1), cache)
    changed = probe(make_zip(tmp_path / "two.zip", 2), cache)
    assert changed["compiled"] == ["pkg/mod.py"]
    assert changed["value"] == 2


def test_a_damaged_entry_is_compiled_again_and_replaced(tmp_path: Path, cache: Path) -> None:
    probe(make_zip(tmp_path / "one.zip", 1), cache)
    for entry in cache.iterdir():
        entry.write_bytes(b"\xe3half")
    again = probe(make_zip(tmp_path / "two.zip", 1), cache)
    assert sorted(again["compiled"]) == ["pkg/__init__.py", "pkg/mod.py"]
    assert again["value"] == 1
    assert probe(make_zip(tmp_path / "three.zip", 1), cache)["compiled"] == []


def test_unset_leaves_zipimport_alone(tmp_path: Path) -> None:
    plain = probe(make_zip(tmp_path / "one.zip", 1), None)
    assert not plain["hooked"]
    # (Python 3.11's zipimporter.get_filename compiles the module too: twice each.)
    assert set(plain["compiled"]) == {"pkg/__init__.py", "pkg/mod.py"}


@pytest.mark.parametrize(("value", "hooked"), [(None, "False"), ("", "False"), ("cache", "True")])
def test_the_venv_imports_it_only_when_set(cache: Path, value: str | None, hooked: str) -> None:
    """make venv's .pth line: the venv's Python has the hook with the variable, not without."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPLABS_")}
    if value is not None:
        env["TPLABS_ZIPIMPORT_CACHE"] = str(cache) if value else value
    check = "import sys; print(any(getattr(h, 'cache_directory', None) for h in sys.path_hooks))"
    out = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == hooked


# Forks twice (the second time from the first child too) and says, in each process, whether
# the objects that existed at the first fork are frozen and whether a cycle made after it is
# still collected.
FORKS = """
import gc, json, os, sys
def state():
    class Node: pass
    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    return {"frozen": gc.get_freeze_count(), "collected": gc.collect() >= 2}
before = gc.get_freeze_count()
first = os.fork()
if first == 0:
    child = os.fork()
    if child == 0:
        print(json.dumps({"grandchild": state()}), flush=True); os._exit(0)
    os.waitpid(child, 0)
    print(json.dumps({"child": state()}), flush=True); os._exit(0)
os.waitpid(first, 0)
frozen_at_first = gc.get_freeze_count()
second = os.fork()
if second == 0:
    os._exit(0)
os.waitpid(second, 0)
print(json.dumps({"parent": state(), "before": before, "frozen_at_first": frozen_at_first,
                  "after_second": gc.get_freeze_count()}), flush=True)
"""


@pytest.mark.parametrize("setting", ["1", ""])
def test_gc_frozen_at_the_first_fork_only(setting: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPLABS_")}
    env["TPLABS_GC_FREEZE"] = setting
    out = subprocess.run(
        [sys.executable, "-c", FORKS], env=env, capture_output=True, text=True, check=True
    )
    seen = {k: v for line in out.stdout.splitlines() for k, v in json.loads(line).items()}
    assert seen["before"] == 0
    if setting:
        assert seen["frozen_at_first"] > 1000  # the interpreter's own objects, at least
        assert seen["after_second"] == seen["frozen_at_first"]  # not again at the second
    else:
        assert seen["frozen_at_first"] == 0 == seen["after_second"]
    for process in ("parent", "child", "grandchild"):
        assert seen[process]["collected"], seen  # a cycle made after the freeze still goes
