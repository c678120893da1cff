# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 0 (the hosts answer) and the ad hoc steps 1 and 2, graded from the hosts' state."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from .common import Context, Grade, look, wait_until_ended
from .hosts import HostError
from .record import Job
from .run import REPO, Run
from .steps_play import after_return, reported_finished, wait_saw

STEP2_LIMIT = 300  # the checker's step 2 job: async limit, and how long it may wait for its end
INVENTORY_OPTIONS = {"-i", "--inventory", "--inventory-file", "-c", "--connection"}


def adhoc_argv(argv: list[str], inventory: Path, limit: str | None = None) -> list[str]:
    """The trainee's command aimed at the chosen inventory (its own -i/-c dropped)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in INVENTORY_OPTIONS:
            skip = True
            continue
        if any(arg.startswith(o + "=") for o in INVENTORY_OPTIONS if o.startswith("--")):
            continue
        out.append(arg)
    out[1:1] = ["-i", str(inventory)]
    return out + (["--limit", limit] if limit else [])


def pattern(argv: list[str]) -> str:
    return next((a for a in argv[1:] if not a.startswith("-")), "all")


def grade_step0(ctx: Context, run: Run | None, hosts: list[str]) -> Grade:
    grade = Grade()
    if run is not None and run.rc != 0:
        grade.lack(
            (
                "the playbook run failed (rc {rc}): {error}",
                "le playbook a échoué (rc {rc}) : {error}",
            ),
            ("fix the error shown above", "corrigez l'erreur affichée plus haut"),
            rc=run.rc,
            error=run.first_error(),
        )
    try:
        views = ctx.hosts.probe(hosts)
    except HostError as err:
        grade.lack(
            ("the lab hosts answer: {err}", "les hôtes du lab répondent : {err}"),
            (
                "make lab creates host1..host3 on Incus (then INVENTORY=inventories/incus.yml); the local inventory needs nothing",
                "make lab crée host1..host3 sur Incus (puis INVENTORY=inventories/incus.yml) ; l'inventaire local n'a besoin de rien",
            ),
            err=err,
        )
        return grade
    for host, view in sorted(views.items()):
        grade.see(
            "{host}: answers, Python {py}, async dir {dir}",
            "{host} : répond, Python {py}, répertoire async {dir}",
            host=host,
            py=view.python,
            dir=view.async_dir,
        )
    return grade


def grade_step1(ctx: Context, run: Run, hosts: list[str]) -> Grade:
    grade = Grade()
    jobs = run.record.jobs()
    if run.rc != 0 or not jobs:
        grade.lack(
            (
                "no background job was started (rc {rc}): {error}",
                "aucune tâche de fond n'a démarré (rc {rc}) : {error}",
            ),
            (
                "`-B 3600` runs the command in the background, `-P 0` does not wait for it",
                "`-B 3600` lance la commande en arrière-plan, `-P 0` ne l'attend pas",
            ),
            rc=run.rc,
            error=run.first_error() if run.rc else "no job id",
        )
        return grade
    seen, _ = look(ctx, jobs)
    for s in seen:
        after = after_return(s, s.host_time(run.record.ended or run.ended))
        if after is not None:
            grade.see(
                "{host}: job {jid} ran in the background after the command returned ({after}; job file {path})",
                "{host} : la tâche {jid} a continué en arrière-plan après le retour de la commande ({after} ; fichier de job {path})",
                host=s.job.host,
                jid=s.job.jid,
                after=after,
                path=s.info.get("path"),
            )
        else:
            grade.lack(
                (
                    "{host}: job {jid} had already ended when the command returned",
                    "{host} : la tâche {jid} était déjà finie au retour de la commande",
                ),
                (
                    "`-P 0` returns at once; a poll above 0 waits for the end",
                    "`-P 0` rend la main aussitôt ; un poll supérieur à 0 attend la fin",
                ),
                host=s.job.host,
                jid=s.job.jid,
            )
    missing = sorted(set(hosts) - {j.host for j in jobs})
    if missing:
        grade.lack(
            ("no job on {hosts}", "aucune tâche sur {hosts}"),
            (
                "target every lab host (ansible all ... or ansible lab ...)",
                "visez tous les hôtes du lab (ansible all ... ou ansible lab ...)",
            ),
            hosts=", ".join(missing),
        )
    return grade


def status_round(ctx: Context, argv: list[str] | None, host: str, jid: str) -> Run:
    if argv is None:
        extra = {
            "job_status_jid": jid,
            "job_status_log": "/tmp/tplabs_async/{{ inventory_hostname }}/check/states.log",
        }
        return ctx.command(
            [
                "ansible-playbook",
                "-i",
                str(ctx.inventory),
                str(REPO / "playbooks/step2.yml"),
                "-l",
                host,
                "-e",
                json.dumps(extra),
            ]
        )
    line = [re.sub(r"<JOB_ID>|<jid>|j\d+\.\d+", jid, a) for a in argv]
    return ctx.command(adhoc_argv(line, ctx.inventory, limit=host))


def grade_round(
    grade: Grade, run: Run, host: str, jid: str, want_finished: bool | None, state: str
) -> None:
    reports = wait_saw(run.record, host, jid)
    if not reports:
        grade.lack(
            (
                "{host}: async_status did not answer about job {jid} (rc {rc}: {error})",
                "{host} : async_status n'a rien dit de la tâche {jid} (rc {rc} : {error})",
            ),
            (
                '`-m async_status -a "jid=<JOB_ID>"`, with the job id the launch printed (the checker puts it in place of <JOB_ID>)',
                '`-m async_status -a "jid=<JOB_ID>"`, avec l\'identifiant affiché au lancement (le correcteur le met à la place de <JOB_ID>)',
            ),
            host=host,
            jid=jid,
            rc=run.rc,
            error=run.first_error() or "no async_status task",
        )
        return
    said = reports[-1]
    finished = reported_finished(said)
    if want_finished is not None and finished != want_finished:
        grade.lack(
            (
                "{host}: async_status said finished={said} while the job file said {state}",
                "{host} : async_status a dit finished={said} alors que le fichier de job disait {state}",
            ),
            (
                "ask again: async_status reads the job file at the moment it runs",
                "redemandez : async_status lit le fichier de job au moment où il tourne",
            ),
            host=host,
            said=said.get("finished"),
            state=state,
        )
        return
    grade.see(
        "{host}: async_status said finished={said}{rc} while the job file said {state}",
        "{host} : async_status a dit finished={said}{rc} quand le fichier de job disait {state}",
        host=host,
        said=json.dumps(said.get("finished")),
        state=state,
        rc=f", rc={said.get('rc')}" if finished else "",
    )


def grade_step2(ctx: Context, argv: list[str] | None, hosts: list[str]) -> Grade:
    """The checker's own job runs until the checker releases it (a file it creates on the
    host after the first round): the answer sees it running, then finished, on any machine."""
    grade = Grade()
    host = hosts[0]
    release = f"/tmp/lab-checker-release-{secrets.token_hex(6)}"
    wait_for_it = f"until [ -e {release} ]; do sleep 0.5; done; rm -f {release}; echo released"
    launch = ctx.command(
        [
            "ansible",
            host,
            "-i",
            str(ctx.inventory),
            "-B",
            str(STEP2_LIMIT),
            "-P",
            "0",
            "-m",
            "ansible.builtin.shell",
            "-a",
            wait_for_it,
        ]
    )
    jobs = [j for j in launch.record.jobs() if j.host == host]
    if not jobs:
        grade.lack(
            (
                "the checker could not start a job on {host}: {error}",
                "le correcteur n'a pas pu lancer de tâche sur {host} : {error}",
            ),
            ("check step 0 (make check STEP=0)", "vérifiez l'étape 0 (make check STEP=0)"),
            host=host,
            error=launch.first_error(),
        )
        return grade
    job: Job = jobs[0]
    first = status_round(ctx, argv, host, job.jid)
    seen, _ = look(ctx, [job], touch=[release])  # the job's state, then its release
    grade_round(grade, first, host, job.jid, False, seen[0].state)
    ended = wait_until_ended(ctx, [job], STEP2_LIMIT)
    second = status_round(ctx, argv, host, job.jid)
    grade_round(grade, second, host, job.jid, True, ended[0].state)
    return grade
