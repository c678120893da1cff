# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 8 (objective 7), step 9 (objective 9) and the challenge (objective 10)."""

from __future__ import annotations

from .common import Context, Grade, JobSeen, by_host, job_model, look, max_running, seconds
from .messages import both
from .record import Job
from .run import Run
from .steps_play import HINT_WAIT, all_waited, launched, reported_finished, run_ok, wait_saw

CHALLENGE_FILE = "/tmp/async-done.txt"
CHALLENGE_TEXT = "Async OK"


def grade_step8(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts, background=False)
    if not jobs:
        return grade
    seen, _ = look(ctx, jobs, run=run)
    for host, mine in sorted(by_host(seen).items()):
        if len(mine) < 2:
            grade.lack(
                (
                    "{host}: only {n} background job (at least 2 are grouped in this step)",
                    "{host} : une seule tâche de fond ({n}) (cette étape en regroupe au moins 2)",
                ),
                (
                    "launch several jobs with poll: 0, e.g. a loop over the commands, registered once",
                    "lancez plusieurs tâches avec poll: 0, par exemple une boucle sur les commandes, enregistrée une fois",
                ),
                host=host,
                n=len(mine),
            )
            continue
        # the tasks that saw each launch task's jobs finished (one per launch: grouped)
        per_launch: dict[str, set[str]] = {}
        for s in mine:
            saw = wait_saw(run.record, host, s.job.jid)
            per_launch.setdefault(s.job.task.uuid, set()).update(
                r["task"] for r in saw if reported_finished(r)
            )
        waiters = set().union(*per_launch.values())
        unseen = [
            s.job.jid
            for s in mine
            if not any(reported_finished(r) for r in wait_saw(run.record, host, s.job.jid))
        ]
        if unseen:
            grade.lack(
                (
                    "{host}: no wait reported job(s) {jids} finished",
                    "{host} : aucune attente n'a vu finir la ou les tâches {jids}",
                ),
                (
                    "wait for all of them in one task: async_status in a loop over the launch's results, or tplabs.async_tasks.async_wait",
                    "attendez-les toutes dans une seule tâche : async_status en boucle sur les résultats du lancement, ou tplabs.async_tasks.async_wait",
                ),
                host=host,
                jids=", ".join(unseen),
            )
            continue
        if any(len(w) > 1 for w in per_launch.values()):
            grade.lack(
                (
                    "{host}: the jobs were waited for by {n} tasks ({tasks}), not grouped in one",
                    "{host} : les tâches ont été attendues par {n} tâches ({tasks}), pas regroupées en une",
                ),
                (
                    'one task: `loop: "{{{{ jobs.results }}}}"` with async_status, or async_wait with `jobs: "{{{{ jobs }}}}"`',
                    'une seule tâche : `loop: "{{{{ jobs.results }}}}"` avec async_status, ou async_wait avec `jobs: "{{{{ jobs }}}}"`',
                ),
                host=host,
                n=len(waiters),
                tasks=", ".join(sorted(waiters)),
            )
            continue
        spans = [s.span for s in mine if s.span]
        failed = [s.job.jid for s in mine if s.state in job_model().FAILED_STATES]
        grade.see(
            "{host}: {n} jobs, at most {most} running at once, all waited for by {task!r}{failed}",
            "{host} : {n} tâches, au plus {most} en même temps, toutes attendues par {task!r}{failed}",
            host=host,
            n=len(mine),
            most=max_running(spans) if len(spans) == len(mine) else "?",
            task=", ".join(sorted(waiters)),
            failed=f" (failed: {', '.join(failed)})" if failed else "",
        )
    return grade


def sync_spans(run: Run, host: str, shortest: float) -> list[tuple[float, float]]:
    """Synchronous command runs on a host long enough to be the work (the module's own start/end).

    A wait (async_status) is not one: its result carries the start and end of the job it saw."""
    from datetime import datetime

    spans = []
    for res in run.record.results:
        if res.host != host or res.task.async_val > 0 or res.task.waiter or res.status != "ok":
            continue
        parts = (
            res.result.get("results")
            if isinstance(res.result.get("results"), list)
            else [res.result]
        )
        for part in parts:
            try:
                start = datetime.strptime(part["start"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                end = datetime.strptime(part["end"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            except (KeyError, TypeError, ValueError):
                continue
            if end - start >= shortest * 0.8:
                spans.append((start, end))
    return spans


def grade_step9(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts)
    if not jobs:
        return grade
    seen, _ = look(ctx, jobs, run=run)
    if not all_waited(grade, seen):
        return grade
    for host, mine in sorted(by_host(seen).items()):
        spans = [s.span for s in mine if s.span]
        if len(spans) < len(mine):
            grade.lack(
                (
                    "{host}: the jobs' start and end could not be read (no job file, no record from a wait)",
                    "{host} : le début et la fin des tâches sont illisibles (ni fichier de job, ni résultat d'attente)",
                ),
                (
                    "wait for the jobs with async_status or async_wait in the same play",
                    "attendez les tâches avec async_status ou async_wait dans le même play",
                ),
                host=host,
            )
            continue
        shortest = min(b - a for a, b in spans)
        sync = sync_spans(run, host, shortest)
        if len(sync) < 2:
            grade.lack(
                (
                    "{host}: the same work was not also run synchronously ({n} long synchronous command(s))",
                    "{host} : le même travail n'a pas aussi été fait en synchrone ({n} commande(s) synchrone(s) longue(s))",
                ),
                (
                    "first run the jobs one after the other (a loop, no async), then the same jobs with async + poll 0, and compare",
                    "faites d'abord tourner les tâches l'une après l'autre (une boucle, sans async), puis les mêmes avec async + poll 0, et comparez",
                ),
                host=host,
                n=len(sync),
            )
            continue
        sync_wall = max(b for _, b in sync) - min(a for a, _ in sync)
        async_wall = max(b for _, b in spans) - min(a for a, _ in spans)
        if not launched_before_waiting(run, host, [s.job for s in mine]):
            grade.lack(
                (
                    "{host}: the asynchronous jobs were not all launched before the wait began",
                    "{host} : les tâches asynchrones n'ont pas toutes été lancées avant le début de l'attente",
                ),
                (
                    "launch every job with poll: 0 (a loop), then wait for all of them",
                    "lancez toutes les tâches avec poll: 0 (une boucle), puis attendez-les toutes",
                ),
                host=host,
            )
            continue
        grade.see(
            "{host}: {n} jobs one after the other {s} s, the same jobs in the background {a} s (at most {most} at once): {g} s gained, x{x}",
            "{host} : {n} tâches l'une après l'autre {s} s, les mêmes en arrière-plan {a} s (au plus {most} ensemble) : {g} s gagnées, x{x}",
            host=host,
            n=len(sync),
            s=seconds(sync_wall),
            a=seconds(async_wall),
            most=max_running(spans),
            g=seconds(sync_wall - async_wall),
            x=f"{sync_wall / async_wall:.2f}",
        )
        if async_wall >= sync_wall:
            starts = [a for a, _ in spans]
            grade.see(
                "{host}: no gain this time: the background jobs started over {spread} s, longer than a job lasts ({job} s); "
                "on a loaded machine each launch is slow, and longer jobs show the gain",
                "{host} : pas de gain cette fois : les tâches de fond ont démarré sur {spread} s, plus que ne dure une tâche ({job} s) ; "
                "sur une machine chargée chaque lancement est lent, et des tâches plus longues montrent le gain",
                host=host,
                spread=seconds(max(starts) - min(starts)),
                job=seconds(shortest),
            )
    return grade


def launched_before_waiting(run: Run, host: str, jobs: list[Job]) -> bool:
    """Every job launched (its launch result back) before the first wait for any of them began."""
    ids = {j.jid for j in jobs}
    starts = []
    for res in run.record.waits():
        if res.host != host or not res.started_at or res.task.waiter == "async_launch":
            continue
        parts = (
            res.result.get("results")
            if isinstance(res.result.get("results"), list)
            else [res.result]
        )
        named = {p.get("ansible_job_id") for p in parts}
        named |= {j.get("jid") for p in parts for j in p.get("jobs") or [] if isinstance(j, dict)}
        if named & ids:
            starts.append(res.started_at)
    return not starts or max(j.launched_at for j in jobs) <= min(starts)


def grade_challenge(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    if not run_ok(grade, run):
        return grade
    jobs = launched(grade, run, hosts)
    seen, views = look(ctx, jobs, files=[CHALLENGE_FILE], run=run)
    for host in hosts:
        view = views.get(host) or ctx.hosts.probe([host], files=[CHALLENGE_FILE])[host]
        found = view.files.get(CHALLENGE_FILE, {})
        text = (found.get("text") or "").strip()
        fresh = found.get("mtime", 0) >= run.started - 1
        if text != CHALLENGE_TEXT or not fresh:
            grade.lack(
                (
                    "{host}: {path} holds {text!r}{stale}, not {want!r}",
                    "{host} : {path} contient {text!r}{stale}, pas {want!r}",
                ),
                (
                    "the background command writes it: `sleep 5 && echo 'Async OK' > /tmp/async-done.txt`",
                    "la commande de fond l'écrit : `sleep 5 && echo 'Async OK' > /tmp/async-done.txt`",
                ),
                host=host,
                path=CHALLENGE_FILE,
                text=text if found.get("exists") else None,
                stale="" if fresh or not found.get("exists") else " (from an earlier run)",
                want=CHALLENGE_TEXT,
            )
            continue
        mine = [s for s in seen if s.job.host == host]
        if not mine:
            continue
        s = mine[0]
        # hosts that see the same file (the local inventory's hosts are one machine): any of
        # their jobs may have written it last
        sharing = {
            h
            for h, v in views.items()
            if v.files.get(CHALLENGE_FILE, {}).get("mtime") == found["mtime"]
        }
        writers = [x for x in seen if x.job.host in sharing and x.job.task.background]
        written = written_by_job(grade, s, writers, found["mtime"], host)
        if written is None:
            continue
        waits = [r for r in wait_saw(run.record, host, s.job.jid) if reported_finished(r)]
        if not waits:
            grade.lack(
                (
                    "{host}: no async_status or async_wait task waited for job {jid}",
                    "{host} : aucune tâche async_status ou async_wait n'a attendu la tâche {jid}",
                ),
                HINT_WAIT,
                host=host,
                jid=s.job.jid,
            )
            continue
        grade.see(
            "{host}: {path} holds {want!r}, written by {written}; {task!r} ({waiter}) waited for it",
            "{host} : {path} contient {want!r}, écrit par {written} ; {task!r} ({waiter}) l'a attendue",
            host=host,
            path=CHALLENGE_FILE,
            want=CHALLENGE_TEXT,
            written=written,
            task=waits[-1]["task"],
            waiter=waits[-1]["waiter"],
        )
    return grade


def written_by_job(
    grade: Grade, s: JobSeen, writers: list[JobSeen], mtime: float, host: str
) -> str | None:
    """Whether a background job wrote the file, and the launch returned without waiting.

    Judged on the hosts' own word, never on how long the controller took: the launch's
    reply (async_wrapper's, on the host) said the job had not finished, and the file's time
    lies within the run of a job that could write it (its own host's, or on hosts that share
    the file, theirs), as its host recorded it (the command's start and end in the job file).
    Under load a launch can take longer than the job (2-5 s a host against a 5 s job): the
    controller then hears of the launch after the file was written, which is no sign that
    the launch waited."""
    if job_model().flag(s.job.result.get("finished")):
        grade.lack(
            (
                "{host}: the launch returned after the job had finished: it waited",
                "{host} : le lancement a rendu la main après la fin de la tâche : il l'a attendue",
            ),
            HINT_WAIT_ASYNC,
            host=host,
        )
        return None
    if s.span is None:  # no start and end on the host: the controller's clock is all there is
        returned = s.host_time(s.job.launched_at)
        if mtime <= returned:
            grade.lack(
                (
                    "{host}: the launch returned after the file was written: it waited",
                    "{host} : le lancement a rendu la main après l'écriture du fichier : il a attendu",
                ),
                HINT_WAIT_ASYNC,
                host=host,
            )
            return None
        return both(
            "the background job, {late} s after the launch returned",
            "la tâche de fond, {late} s après le retour du lancement",
            late=seconds(mtime - returned),
        )
    # the file's time comes from the kernel's coarse clock (a few ms behind the module's)
    by = next((w for w in [s, *writers] if w.span and w.span[0] <= mtime <= w.span[1] + 1), None)
    if by is None:
        start = s.span[0]
        grade.lack(
            (
                "{host}: {path} was written {when}: not by it",
                "{host} : {path} a été écrit {when_fr} : pas par elle",
            ),
            (
                "the background command itself writes the file: `sleep 5 && echo 'Async OK' > /tmp/async-done.txt`",
                "c'est la commande de fond elle-même qui écrit le fichier : `sleep 5 && echo 'Async OK' > /tmp/async-done.txt`",
            ),
            host=host,
            path=CHALLENGE_FILE,
            when=(
                "before the background job {jid} started"
                if mtime < start
                else "after the background job {jid} ended"
            ).format(jid=s.job.jid),
            when_fr=(
                "avant le début de la tâche de fond {jid}"
                if mtime < start
                else "après la fin de la tâche de fond {jid}"
            ).format(jid=s.job.jid),
        )
        return None
    if by.job.host != host:
        return both(
            "{other}'s background job, {late} s after it started (these hosts share the file; {other}'s wrote last)",
            "la tâche de fond de {other}, {late} s après son début (ces hôtes partagent le fichier ; celle de {other} l'a écrit en dernier)",
            other=by.job.host,
            late=seconds(mtime - by.span[0]),
        )
    return both(
        "the background job, {late} s after it started, by its host's clock (the launch had returned with the job unfinished)",
        "la tâche de fond, {late} s après son début, à l'horloge de son hôte (le lancement avait rendu la main, la tâche non finie)",
        late=seconds(mtime - by.span[0]),
    )


HINT_WAIT_ASYNC = (
    "launch with `async:` and `poll: 0`, then wait in a second task",
    "lancez avec `async:` et `poll: 0`, puis attendez dans une seconde tâche",
)
