# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps: what each grades, its reference solution, and the short durations it passes.

The quick values are given under the exercises' names (job_seconds, wait_delay...) and the
reference roles' names alike, as extra vars: a trainee's play keeps the lab's values in its
`vars:` and the checker runs it with short jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import steps_adhoc, steps_more, steps_play
from .answer import adhoc, plays, targeted
from .common import Context, Grade
from .messages import both, say
from .run import REPO


@dataclass
class Step:
    key: str
    what: tuple[str, str]
    reference: str
    grader: Callable[..., Grade]
    quick: dict[str, Any] = field(default_factory=dict)
    kind: str = "playbook"  # playbook | adhoc | status | hosts
    args: tuple[str, ...] = ()

    def prepare(self, ctx: Context, lab: list[str]) -> Any:
        if self.kind == "hosts":
            return self._hosts(ctx, lab)
        if self.kind == "status":
            return (adhoc(ctx.file, self.key) if ctx.file else None), lab
        if self.kind == "adhoc" and ctx.file and ctx.file.suffix in {".sh", ".txt", ""}:
            argv = adhoc(ctx.file, self.key)
            return ctx.command(steps_adhoc.adhoc_argv(argv, ctx.inventory)), lab
        path = ctx.file or REPO / self.reference
        hosts = targeted(path, ctx.inventory)
        return ctx.playbook(path, self.quick, *self.args), hosts

    def _hosts(self, ctx: Context, lab: list[str]) -> Any:
        if ctx.file is None:
            return None, lab
        plays(ctx.file)
        return ctx.playbook(ctx.file, self.quick), lab

    def label(self, inventory: Path) -> str:
        """What was graded when no FILE was given."""
        if self.kind == "hosts":
            return both("the lab hosts of {inv}", "les hôtes du lab de {inv}", inv=inventory)
        return f"{self.reference} {say('reference')}"

    def grade(self, ctx: Context, answer: Any, lab: list[str]) -> Grade:
        first, hosts = answer
        return self.grader(ctx, first, hosts)


STEPS: dict[str, Step] = {
    s.key: s
    for s in [
        Step(
            "0",
            ("the lab hosts", "les hôtes du lab"),
            "playbooks/step0.yml",
            steps_adhoc.grade_step0,
            kind="hosts",
        ),
        Step(
            "1",
            ("an ad hoc command in the background", "une commande ad hoc en arrière-plan"),
            "playbooks/step1.yml",
            steps_adhoc.grade_step1,
            {"fire_and_forget_seconds": 300},
            kind="adhoc",
        ),
        Step(
            "2",
            ("follow the job with async_status", "suivre la tâche avec async_status"),
            "playbooks/step2.yml",
            steps_adhoc.grade_step2,
            kind="status",
        ),
        Step(
            "3",
            ("async in a playbook", "async dans un playbook"),
            "playbooks/step3.yml",
            steps_play.grade_step3,
            {"job_seconds": 60, "async_playbook_seconds": 60},
        ),
        Step(
            "4",
            ("wait for the job", "attendre la tâche"),
            "playbooks/step4.yml",
            steps_play.grade_step4,
            {
                "job_seconds": 3,
                "wait_delay": 1,
                "wait_job_seconds": 3,
                "wait_job_delay": 1,
                "wait_job_waiters": ["until"],
            },
        ),
        Step(
            "5",
            ("control parallelism with throttle", "contrôler le parallélisme avec throttle"),
            "playbooks/step5.yml",
            steps_play.grade_step5,
            {
                "job_seconds": 6,
                "wait_delay": 1,
                "throttle_seconds": 6,
                "throttle_delay": 1,
                "throttle_modes": ["poll0"],
            },
        ),
        Step(
            "6",
            ("compare with forks", "comparer avec forks"),
            "playbooks/step6_measure.yml",
            steps_play.grade_step6,
            {
                "job_seconds": 6,
                "wait_delay": 1,
                "forks_seconds": 6,
                "forks_delay": 1,
                "forks_throttle": 0,
            },
            args=("--forks", "2"),
        ),
        Step(
            "7",
            ("handle the timeout and failures", "gérer le timeout et les échecs"),
            "playbooks/step7.yml",
            steps_play.grade_step7,
            {
                "job_seconds": 20,
                "job_async": 3,
                "wait_delay": 1,
                "timeout_sleep": 20,
                "timeout_async": 3,
                "timeout_delay": 1,
                "timeout_show_lab_form": False,
            },
        ),
        Step(
            "8",
            (
                "group several async tasks (objective 7)",
                "regrouper plusieurs tâches async (objectif 7)",
            ),
            "playbooks/step8.yml",
            steps_more.grade_step8,
            {
                "job_seconds": 3,
                "wait_delay": 1,
                "group_jobs_delay": 1,
                "group_jobs_waiter": "async_status",
                "group_jobs_jobs": [
                    {"name": "fetch", "seconds": 2},
                    {"name": "build", "seconds": 4},
                    {"name": "index", "seconds": 3},
                ],
            },
        ),
        Step(
            "9",
            ("measure the time gained (objective 9)", "mesurer le temps gagné (objectif 9)"),
            "playbooks/step9.yml",
            steps_more.grade_step9,
            {"job_count": 3, "job_seconds": 3, "time_gained_count": 3, "time_gained_seconds": 3},
        ),
        Step(
            "challenge",
            ("Async OK, objective 10", "Async OK, objectif 10"),
            "playbooks/challenge.yml",
            steps_more.grade_challenge,
            {"job_seconds": 5, "challenge_seconds": 5},
        ),
    ]
}

__all__ = ["STEPS", "Path", "Step"]
