# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""make check STEP=<0-9|challenge> [FILE=...] [INVENTORY=...]: grade one step of the lab.

Exit 0: passed; 1: not passed (what is missing and a hint are printed); 2: input the checker
cannot grade (no such file, not YAML, not a playbook, no lab host). Never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .answer import BadInput, lab_hosts
from .messages import both, say
from .steps import STEPS, Step

REPO = Path(__file__).resolve().parents[2]


def _collections() -> None:
    """Import the collection's shared code from the path the runs use (the live work tree)."""
    from .run import live_collections

    first = (os.environ.get("ANSIBLE_COLLECTIONS_PATH") or str(live_collections())).split(
        os.pathsep
    )[0]
    if first not in sys.path:
        sys.path.insert(0, first)
    from .common import load_shared

    load_shared()


def _path(value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make check", description=__doc__)
    parser.add_argument("step", help="0-9 or challenge")
    parser.add_argument("--file", default="", help="the trainee's answer (default: the reference)")
    parser.add_argument("--inventory", default="inventories/local.yml")
    parser.add_argument("--quiet", action="store_true", help="do not show the runs' output")
    return parser.parse_args(argv)


def report(step: Step, grade, label: str) -> int:
    verdict = say("passed") if grade.passed else say("not_passed")
    what = both(*step.what)
    key = "title_challenge" if step.key == "challenge" else "title"
    print()
    print(say(key, step=step.key, what=what, verdict=verdict.upper()))
    print("  " + say("graded", file=label))
    if grade.measured:
        print("  " + say("measured"))
        for line in grade.measured:
            print("    - " + line)
    if grade.missing:
        print("  " + say("missing"))
        for what_missing, hint in grade.missing:
            print("    - " + what_missing)
            print("      " + say("hint") + " " + hint)
    return 0 if grade.passed else 1


def _locale() -> None:
    """LANG=fr (make check ... LANG=fr) picks French; Ansible itself needs a UTF-8 locale that
    exists, so an unknown one gives way to C.UTF-8 (here and in the runs)."""
    import locale

    if os.environ.get("LANG", "").lower().startswith("fr"):
        os.environ.setdefault("LAB_LANG", "fr")
    try:
        locale.setlocale(locale.LC_ALL, "")
        usable = locale.getpreferredencoding(False).lower().replace("-", "") == "utf8"
    except locale.Error:
        usable = False
    if not usable:
        os.environ["LC_ALL"] = "C.UTF-8"
        locale.setlocale(locale.LC_ALL, "C.UTF-8")


def main(argv: list[str]) -> int:
    _locale()
    args = parse(argv)
    step = STEPS.get(args.step.strip().lower())
    if step is None:
        print(say("usage_step", value=args.step), file=sys.stderr)
        return 2
    inventory = _path(args.inventory) or REPO / "inventories/local.yml"
    file = _path(args.file)
    _collections()
    from .common import Context

    ctx = Context(step.key, inventory, file, quiet=args.quiet)
    try:
        lab, _ = lab_hosts(inventory)
        answer = step.prepare(ctx, lab)
        label = str(file) if file else step.label(inventory)
        grade = step.grade(ctx, answer, lab)
    except BadInput as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the checker must never end on a traceback
        if os.environ.get("LAB_CHECKER_DEBUG"):
            raise
        from .hosts import HostError

        if isinstance(err, HostError):
            print(say("unreachable", reason=err), file=sys.stderr)
        else:
            print(say("internal", kind=type(err).__name__, reason=str(err)[:300]), file=sys.stderr)
        return 3
    return report(step, grade, label)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
