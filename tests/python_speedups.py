"""What the test runs change in the Python processes they start, to spend less CPU on the
same work; each on only when its variable is set. Nothing the tests check depends on them.

1. A bytecode cache for modules imported from zip files (`TPLABS_ZIPIMPORT_CACHE`, a
directory). Every Ansible module runs from an AnsiballZ payload: a zip of the module and the
`ansible.module_utils` it needs, put first on `sys.path`. Python's `zipimport` compiles each
`.py` of a zip on every import (it reads `.pyc` files from a zip, never writes them; Python
3.11 even compiles each twice, once more to learn its file name), so each module run
compiles `ansible.module_utils.basic` and its imports again: on 2 cores, 2026-11-30, a
`command` module's AnsiballZ file run alone took 0.32 CPU-s, 0.20 with this cache. With
the cache, `zipimport` loads a module's code object from the directory when a file of the
same Python bytecode version, module name and source was compiled before, else compiles it
and stores it there: the code run is the code Python would have compiled from the same
source (only its file name is set to the zip's path of this run, as zipimport would).

2. The garbage collector's objects frozen at a process's first fork (`TPLABS_GC_FREEZE=1`).
`ansible-playbook` forks a worker for each task and host; a worker that collects its
oldest generation walks every object the main process had, and writes to each (a copy of
each page on write), and the main process walks them again on each of its own full
collections. `gc.freeze()` before the first fork moves what exists then (imports, plugins,
inventory, the play: long-lived) out of the collector's reach, in the main process and its
workers; what is created afterwards is collected as usual. As the Python documentation
advises for processes that fork without exec (`gc.freeze`). 2 cores, 2026-11-30, best of 6
and 4 alternated runs: a play of 23 tasks on 3 local hosts 5.66 -> 4.96 CPU-s, the smoke
play (two async jobs a host and async_wait) 4.94 -> 4.08.

`make venv` puts this file in the venv (`python tests/python_speedups.py install`, as the
nox sessions of `make test-matrix` do in theirs) with a `.pth` line that calls
`from_environment` when either variable is set, and `tests/conftest.py` sets both for every
process the tests start. Molecule's create (molecule/shared/create.yml) puts the cache in
each container's python3 with what the local runs compiled (`python tests/python_speedups.py
push CONTAINER...`), before a lane's snapshot; the other containers of the tests run
without it.
"""

from __future__ import annotations

# Imported at every Python start with a variable set: only what start-up has loaded
# already, and a built-in SHA-256 (hashlib loads OpenSSL: 5 ms).
import gc
import marshal
import os
import sys
import zipimport
from _frozen_importlib_external import MAGIC_NUMBER

try:
    from _sha256 import sha256  # Python 3.11
except ImportError:  # pragma: no cover - Python 3.12 and later
    from hashlib import sha256

TYPE_CHECKING = False  # typing is not loaded at start-up
if TYPE_CHECKING:
    from collections.abc import Mapping

CodeType = type(compile("", "", "exec"))

NAME = "_tplabs_python_speedups"  # this module's name where it is installed
# The venv's line: the module imported only when a variable asks for a speed-up.
VENV_PTH = (
    'import os; (os.environ.get("TPLABS_ZIPIMPORT_CACHE") or os.environ.get("TPLABS_GC_FREEZE"))'
    f' and __import__("{NAME}").from_environment(os.environ)\n'
)
# In a container (push): where python3 reads .pth files, and where the cache goes.
CONTAINER_SITE = "/usr/lib/python3/dist-packages"
CONTAINER_CACHES = "/var/cache/tplabs"


def _with_filename(code: CodeType, filename: str) -> CodeType:
    """The code object and those nested in it, with `filename` as their file name."""
    consts = tuple(
        _with_filename(const, filename) if isinstance(const, CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


class CachingZipImporter(zipimport.zipimporter):
    """`zipimport.zipimporter` whose compiled code is kept in a directory between runs."""

    directory = ""

    def get_filename(self, fullname: str) -> str:
        # zipimporter.get_filename compiles the module to learn its path: name it instead.
        tail = fullname.rpartition(".")[2]
        relative = f"{tail}/__init__.py" if self.is_package(fullname) else f"{tail}.py"
        return os.path.join(self.archive, self.prefix, relative)

    def get_code(self, fullname: str) -> CodeType:
        try:
            source = self.get_source(fullname)
        except (zipimport.ZipImportError, UnicodeDecodeError):
            source = None
        if source is None:  # a .pyc in the zip, or not UTF-8: zipimport's own way
            return super().get_code(fullname)
        filename = self.get_filename(fullname)
        key = sha256(
            b"%s\0%d\0%s\0%s"
            % (
                MAGIC_NUMBER,
                sys.flags.optimize,
                fullname.encode(),
                source.encode(),
            )
        ).hexdigest()
        path = os.path.join(self.directory, key)
        try:
            with open(path, "rb") as cached:
                code = marshal.loads(cached.read())
            if isinstance(code, CodeType):
                return _with_filename(code, filename)
        except (OSError, EOFError, ValueError, TypeError):
            pass
        code = compile(source, filename, "exec", dont_inherit=True)
        try:
            os.makedirs(self.directory, exist_ok=True)
            partial = f"{path}.{os.getpid()}"
            with open(partial, "wb") as out:
                out.write(marshal.dumps(code))
            os.replace(partial, path)  # whole or absent: never half a file under the key
        except OSError:
            pass  # a directory this user may not write: compile every time, as without
        return code


def install_zipimport_cache(directory: str) -> None:
    """Put a caching importer first among `sys.path_hooks`, its cache in `directory`."""
    if not directory or any(getattr(hook, "cache_directory", None) for hook in sys.path_hooks):
        return

    def hook(entry: str) -> CachingZipImporter:
        return CachingZipImporter(entry)  # ZipImportError if not a zip: next hook

    CachingZipImporter.directory = directory
    hook.cache_directory = directory  # type: ignore[attr-defined]
    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


_FROZEN: list[bool] = []  # not empty once this process, or the one it forked from, froze


def _freeze_once() -> None:
    if not _FROZEN:
        _FROZEN.append(True)
        gc.freeze()


def freeze_gc_at_first_fork() -> None:
    """`gc.freeze()` just before this process's first `os.fork()` (not subprocess's
    fork-exec, which runs no fork hook and copies nothing of the heap)."""
    os.register_at_fork(before=_freeze_once)


def from_environment(environ: Mapping[str, str]) -> None:
    """What the variables ask for (the venv's `.pth` line)."""
    install_zipimport_cache(environ.get("TPLABS_ZIPIMPORT_CACHE", ""))
    if environ.get("TPLABS_GC_FREEZE") == "1":
        freeze_gc_at_first_fork()


def push(container: str, local: str) -> str:
    """This module in an Incus container's python3, its cache there as warm as the local
    directory: '' or what went wrong."""
    import shutil  # here: every Python start with the cache on imports this module
    import subprocess
    import tempfile

    name = os.path.basename(os.path.normpath(local)) or "zipimport"
    cache = f"{CONTAINER_CACHES}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        module = os.path.join(tmp, f"{NAME}.py")
        shutil.copy(__file__, module)
        pth = os.path.join(tmp, f"{NAME}.pth")
        with open(pth, "w", encoding="utf-8") as out:
            out.write(f"import {NAME} as c; c.install_zipimport_cache({cache!r})\n")
        pushes = [["file", "push", module, pth, f"{container}{CONTAINER_SITE}/"]]
        if os.path.isdir(local):
            pushes.append(["file", "push", "-r", "-p", local, f"{container}{CONTAINER_CACHES}/"])
        for args in pushes:
            done = subprocess.run(["incus", *args], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return f"incus {' '.join(args)} failed: {done.stderr.strip()}"
    return ""


def install_here() -> str:
    """This module and its `.pth` line in the site-packages of the Python running it (make
    venv, the nox sessions of make test-matrix): the directory."""
    import compileall  # here: every Python start with a variable set imports this module
    import shutil
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    module = os.path.join(site, f"{NAME}.py")
    shutil.copy(__file__, module)
    compileall.compile_file(module, quiet=1)  # loaded at every start: compiled once here
    with open(os.path.join(site, f"{NAME}.pth"), "w", encoding="utf-8") as out:
        out.write(VENV_PTH)
    return site


def main(argv: list[str]) -> int:
    """`install`: into this Python's site-packages. `push CONTAINER...`: the cache of
    TPLABS_ZIPIMPORT_CACHE into each container."""
    if argv == ["install"]:
        print(f"{NAME} installed in {install_here()}")
        return 0
    if len(argv) < 2 or argv[0] != "push":
        print("usage: python_speedups.py install | push CONTAINER...", file=sys.stderr)
        return 2
    local = os.environ.get("TPLABS_ZIPIMPORT_CACHE", "")
    if not local:
        return 0  # the cache is off: the containers run without it too
    errors = [error for container in argv[1:] if (error := push(container, local))]
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
