# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Steps 3 to 7: one playbook run each, graded on what the hosts' job files and processes show."""

from __future__ import annotations

from typing import Any

from .common import Context, Grade, JobSeen, by_host, job_model, look, max_running, seconds
from .messages import both
from .record import Record, Result
from .run import Run

HINT_ASYNC = (
    "give the long task `async: 600` and `poll: 0` (step 3)",
    "donnez à la tâche longue `async: 600` et `poll: 0` (étape 3)",
)
HINT_WAIT = (
    'after the launch, wait with `ansible.builtin.async_status` (`jid: "{{{{ job.ansible_job_id }}}}"`, '
    "`until: job_status.finished`, retries x delay longer than the job) (step 4)",
    'après le lancement, attendez avec `ansible.builtin.async_status` (`jid: "{{{{ job.ansible_job_id }}}}"`, '
    "`until: job_status.finished`, retries x delay plus long que la tâche) (étape 4)",
)


def run_ok(grade: Grade, run: Run) -> bool:
    if run.rc == 0 and run.record.complete:
        return True
    grade.lack(
        ("the playbook run failed (rc {rc}): {error}", "le playbook a échoué (rc {rc}) : {error}"),
        (
            "fix the error shown above, then check again",
            "corrigez l'erreur affichée plus haut, puis relancez la vérification",
        ),
        rc=run.rc,
        error=run.first_error(),
    )
    return False


def launched(grade: Grade, run: Run, hosts: list[str], background: bool = True) -> list[Any]:
    """The jobs of the run; a missing item for each host that got none."""
    jobs = run.record.background_jobs() if background else run.record.jobs()
    for host in hosts:
        if not any(j.host == host for j in jobs):
            grade.lack(
                (
                    "no background job was launched on {host} (no task with async > 0 and poll: 0 ran there)",
                    "aucune tâche de fond n'a été lancée sur {host} (aucune tâche avec async > 0 et poll: 0 n'y a tourné)",
                ),
                HINT_ASYNC,
                host=host,
            )
    return jobs


def wait_saw(record: Record, host: str, jid: str) -> list[dict[str, Any]]:
    return record.wait_reports(host, jid)


def reported_finished(report: dict[str, Any]) -> bool:
    model = job_model()
    if report.get("state") in model.ENDED_STATES:
        return True
    return model.flag(report.get("finished"))


def grade_step3(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts, background=False)
    if not jobs:
        return grade
    seen, _ = look(ctx, jobs, run=run)
    for s in seen:
        returned = s.host_time(run.record.ended or run.ended)
        after = after_return(s, returned)
        if after is not None:
            grade.see(
                "{host}: job {jid} still ran when the play returned ({left}); the play took {wall} s",
                "{host} : la tâche {jid} tournait encore quand le playbook a rendu la main ({left}) ; le playbook a duré {wall} s",
                host=s.job.host,
                jid=s.job.jid,
                left=after,
                wall=seconds(run.ended - run.started),
            )
        else:
            grade.lack(
                (
                    "{host}: job {jid} had already ended when the play returned: the play waited for it",
                    "{host} : la tâche {jid} était déjà finie quand le playbook a rendu la main : il l'a attendue",
                ),
                (
                    "with `poll: 0` the launch returns at once; a `poll` above 0 (15 by default) waits for the end",
                    "avec `poll: 0` le lancement rend la main aussitôt ; un `poll` supérieur à 0 (15 par défaut) attend la fin",
                ),
                host=s.job.host,
                jid=s.job.jid,
            )
    return grade


def after_return(s: JobSeen, returned: float) -> str | None:
    """How the job outlived the return (host clock), or None when it had ended before it."""
    if s.state in job_model().ACTIVE_STATES and s.alive:
        return both(
            "its job file still says running, its process alive",
            "son fichier de job dit encore running, son processus vivant",
        )
    if s.span and s.span[1] > returned:
        return both(
            "it ended {late} s later, by its host's clock",
            "elle s'est terminée {late} s plus tard, à l'horloge de son hôte",
            late=seconds(s.span[1] - returned),
        )
    return None


def grade_step4(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts)
    if not jobs:
        return grade
    seen, _ = look(ctx, jobs, run=run)
    for s in seen:
        host, jid = s.job.host, s.job.jid
        reports = [r for r in wait_saw(run.record, host, jid) if reported_finished(r)]
        after = after_return(s, s.host_time(run.record.ended or run.ended))
        if not reports:
            grade.lack(
                (
                    "{host}: no async_status/async_wait task saw job {jid} finished ({when})",
                    "{host} : aucune tâche async_status/async_wait n'a vu finie la tâche {jid} ({when})",
                ),
                HINT_WAIT,
                host=host,
                jid=jid,
                when=both(
                    "it still ran when the play returned",
                    "elle tournait encore à la fin du playbook",
                )
                if after
                else both(
                    "it ended before the play returned, unseen",
                    "elle s'est terminée avant la fin du playbook, sans être vue",
                ),
            )
        elif after is not None:
            grade.lack(
                (
                    "{host}: the play returned while job {jid} still ran ({after})",
                    "{host} : le playbook a rendu la main alors que la tâche {jid} tournait encore ({after})",
                ),
                HINT_WAIT,
                host=host,
                jid=jid,
                after=after,
            )
        elif s.span:
            ended = s.host_time(run.record.ended or run.ended) - s.span[1]
            grade.see(
                "{host}: job {jid} ran {ran} s and ended {after} s before the play returned; {task!r} ({waiter}) reported it finished (rc {rc})",
                "{host} : la tâche {jid} a tourné {ran} s et s'est terminée {after} s avant la fin du playbook ; {task!r} ({waiter}) l'a vue finie (rc {rc})",
                host=host,
                jid=jid,
                ran=seconds(s.span[1] - s.span[0]),
                after=seconds(ended),
                task=reports[-1]["task"],
                waiter=reports[-1]["waiter"],
                rc=s.record.get("rc"),
            )
    return grade


def launch_starts(run: Run, task_uuid: str) -> list[float]:
    """When the controller started each host's run of a task (sorted, controller clock).

    Exact on the controller: ansible sends v2_runner_on_start just before it starts the
    worker. A run's end is not: ansible reads a host's result only when its main loop gets back
    to results, after the fork has been freed (under load, seconds after), so "how many hosts
    at once" from start to result would overstate what forks let through."""
    return sorted(
        r.started_at for r in run.record.results if r.task.uuid == task_uuid and r.started_at
    )


def concurrency(grade: Grade, seen: list[JobSeen]) -> None:
    spans = [s.span for s in seen if s.span]
    if len(spans) < len(seen):
        return
    starts = [a for a, _ in spans]
    grade.see(
        "{n} jobs, at most {most} running at once (from the start and end each job's host recorded), started within {spread} s",
        "{n} tâches, au plus {most} en même temps (d'après le début et la fin notés par l'hôte de chacune), démarrées en {spread} s",
        n=len(spans),
        most=max_running(spans),
        spread=seconds(max(starts) - min(starts)),
    )


def all_waited(grade: Grade, seen: list[JobSeen]) -> bool:
    model = job_model()
    pending = [s for s in seen if s.state not in model.ENDED_STATES]
    for s in pending:
        grade.lack(
            (
                "{host}: job {jid} still ran when the play returned",
                "{host} : la tâche {jid} tournait encore à la fin du playbook",
            ),
            HINT_WAIT,
            host=s.job.host,
            jid=s.job.jid,
        )
    return not pending


def grade_step5(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts, background=False)
    if not jobs:
        return grade
    throttled = sorted({j.task.title for j in jobs if j.task.throttle == 2})
    if not throttled:
        values = sorted({j.task.throttle for j in jobs})
        grade.lack(
            (
                "`throttle: 2` on the async task (found throttle {values})",
                "`throttle: 2` sur la tâche async (trouvé throttle {values})",
            ),
            (
                "add `throttle: 2` to the launch task, at the level of `async:` and `poll:`",
                "ajoutez `throttle: 2` à la tâche de lancement, au niveau de `async:` et `poll:`",
            ),
            values=", ".join(str(v or "none") for v in values),
        )
    seen, _ = look(ctx, jobs, run=run)
    if not all_waited(grade, seen):
        return grade
    if throttled:
        grade.see(
            "throttle 2 on {tasks}",
            "throttle 2 sur {tasks}",
            tasks=", ".join(repr(t) for t in throttled),
        )
    concurrency(grade, seen)
    if any(j.task.background for j in jobs):
        grade.see(
            "with poll 0, throttle only paces the launches (each returns at once), so the jobs themselves can all run at once",
            "avec poll 0, throttle ne fait qu'espacer les lancements (chacun rend la main aussitôt) : les tâches elles-mêmes peuvent toutes tourner ensemble",
        )
    return grade


def grade_step6(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts)
    if not jobs:
        return grade
    for name in sorted({j.task.title for j in jobs if j.task.throttle}):
        grade.lack(
            (
                "no throttle on {task!r} (step 6 compares forks alone)",
                "pas de throttle sur {task!r} (l'étape 6 compare forks seul)",
            ),
            (
                "remove `throttle: 2`; the checker runs the play with forks 2 (ANSIBLE_FORKS=2)",
                "retirez `throttle: 2` ; le correcteur lance le playbook avec forks 2 (ANSIBLE_FORKS=2)",
            ),
            task=name,
        )
    seen, _ = look(ctx, jobs, run=run)
    if not all_waited(grade, seen):
        return grade
    for uuid in sorted({j.task.uuid for j in jobs}):
        starts = launch_starts(run, uuid)
        if starts:
            grade.see(
                "forks 2: the launch task {task!r} started on {n} hosts at +{at} s (controller side; "
                "ansible starts a host only once one of the 2 forks is free)",
                "forks 2 : la tâche de lancement {task!r} a démarré sur {n} hôtes à +{at} s (côté contrôleur ; "
                "ansible ne démarre un hôte que lorsque l'un des 2 forks est libre)",
                task=run.record.tasks[uuid].title,
                n=len(starts),
                at=", +".join(seconds(s - starts[0]) for s in starts),
            )
    concurrency(grade, seen)
    grade.see(
        "forks caps the hosts a task runs on at once, for every task; throttle caps one task, below forks",
        "forks limite le nombre d'hôtes qu'une tâche traite à la fois, pour toutes les tâches ; throttle limite une seule tâche, sous forks",
    )
    return grade


def _lab_form(grade: Grade, run: Run) -> None:
    """The lab's `failed_when: job.rc != 0` on a poll 0 launch: refused, with the run's reason."""
    for res in run.record.results:
        task = res.task
        if not (task.background and any(".rc" in c or "['rc']" in c for c in task.failed_when)):
            continue
        if res.status in {"failed", "ignored"}:
            grade.lack(
                (
                    "{task!r}: `failed_when: {cond}` on the poll 0 launch is refused: the launch returns before the job ends, "
                    "its result has no rc yet (the run said: {why})",
                    "{task!r} : `failed_when: {cond}` sur le lancement poll 0 est refusé : le lancement rend la main avant la fin, "
                    "son résultat n'a pas encore de rc (le lancement a dit : {why})",
                ),
                (
                    "put the check on the wait's result: `failed_when: job_status.rc | default(0) != 0` on the async_status task, "
                    "or block/rescue around the wait",
                    "mettez le test sur le résultat de l'attente : `failed_when: job_status.rc | default(0) != 0` sur la tâche async_status, "
                    "ou block/rescue autour de l'attente",
                ),
                task=task.title,
                cond=" and ".join(task.failed_when),
                why=_why(res.result),
            )
            return


def _why(result: dict[str, Any]) -> str:
    """The run's own words for a failed launch (failed_when's error before the generic msg)."""
    cond = result.get("failed_when_result")
    text = cond if isinstance(cond, str) else result.get("msg", "")
    return str(text)[:200]


def timeout_reports(run: Run, host: str, jid: str) -> list[dict[str, Any]]:
    model = job_model()
    return [
        r
        for r in wait_saw(run.record, host, jid)
        if r.get("msg") == model.TIMEOUT_MSG or r.get("state") == model.TIMEOUT
    ]


def unhandled(run: Run, timeouts: set[str]) -> list[Result]:
    """Failures that are not a wait reporting the timeout (those may stop the play)."""
    model = job_model()
    bad = []
    for res in run.record.results:
        if res.status != "failed":
            continue
        if res.task.waiter and (
            res.result.get("msg") == model.TIMEOUT_MSG
            or res.result.get("ansible_job_id") in timeouts
        ):
            continue
        bad.append(res)
    return bad


def grade_step7(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    _lab_form(grade, run)
    if not run.record.complete:
        run_ok(grade, run)
        return grade
    jobs = launched(grade, run, hosts)
    seen, _ = look(ctx, jobs, run=run) if jobs else ([], {})
    model = job_model()
    timed_out = set()
    for s in seen:
        host, jid = s.job.host, s.job.jid
        if s.state != model.TIMEOUT:
            grade.lack(
                (
                    "{host}: job {jid} was not killed at its async limit (job file: {state})",
                    "{host} : la tâche {jid} n'a pas été tuée à sa limite async (fichier de job : {state})",
                ),
                (
                    "the job must outlive `async:` (sleep 100 with async: 10), and the wait must last past the limit",
                    "la tâche doit durer plus que `async:` (sleep 100 avec async: 10), et l'attente au-delà de la limite",
                ),
                host=host,
                jid=jid,
                state=s.state,
            )
            continue
        timed_out.add(jid)
        killed_after = s.info.get("mtime", 0) - s.host_time(s.job.launched_at)
        reports = timeout_reports(run, host, jid)
        if s.alive:
            grade.lack(
                (
                    '{host}: job {jid} reported "Timeout exceeded" but its processes still run',
                    "{host} : la tâche {jid} dit « Timeout exceeded » mais ses processus tournent encore",
                ),
                (
                    "a known async_wrapper race under heavy load; run the check again",
                    "une course connue d'async_wrapper sous forte charge ; relancez la vérification",
                ),
                host=host,
                jid=jid,
            )
        grade.see(
            '{host}: job {jid} killed at its async limit ({limit} s): job file "Timeout exceeded" {after} s after the launch returned',
            "{host} : la tâche {jid} tuée à sa limite async ({limit} s) : fichier de job « Timeout exceeded » {after} s après le retour du lancement",
            host=host,
            jid=jid,
            limit=s.job.task.async_val,
            after=seconds(killed_after),
        )
        if reports:
            grade.see(
                '{host}: the play reported it: {task!r} ({waiter}) saw "Timeout exceeded"',
                "{host} : le playbook l'a signalé : {task!r} ({waiter}) a vu « Timeout exceeded »",
                host=host,
                task=reports[-1]["task"],
                waiter=reports[-1]["waiter"],
            )
        else:
            grade.lack(
                (
                    "{host}: no wait reported the timeout of job {jid}",
                    "{host} : aucune attente n'a signalé le dépassement de la tâche {jid}",
                ),
                (
                    'wait for the job with async_status (until: job_status.finished): its result says "Timeout exceeded"',
                    "attendez la tâche avec async_status (until: job_status.finished) : son résultat dit « Timeout exceeded »",
                ),
                host=host,
                jid=jid,
            )
    for res in unhandled(run, timed_out):
        if any(".rc" in c for c in res.task.failed_when) and res.task.background:
            continue  # already refused above, with its reason
        grade.lack(
            ("{host}: task {task!r} failed: {msg}", "{host} : la tâche {task!r} a échoué : {msg}"),
            (
                "only the wait may report the timeout; fix this task",
                "seule l'attente peut signaler le dépassement ; corrigez cette tâche",
            ),
            host=res.host,
            task=res.task.title,
            msg=str(res.result.get("msg", ""))[:200],
        )
    return grade


__all__ = ["by_host", "grade_step3", "grade_step4", "grade_step5", "grade_step6", "grade_step7"]
