# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every sentence the checker prints, in English and in French.

French when LAB_LANG (or, if unset, LANG) starts with "fr": `make check STEP=3 LANG=fr`.
"""

from __future__ import annotations

import os
import re
from typing import Any

# key: (English, French). Fields in braces are filled by say().
TEXT: dict[str, tuple[str, str]] = {
    # verdicts and layout
    "passed": ("passed", "réussi"),
    "not_passed": ("not passed", "non réussi"),
    "title": ("Step {step} ({what}): {verdict}", "Étape {step} ({what}) : {verdict}"),
    "title_challenge": ("Challenge ({what}): {verdict}", "Challenge ({what}) : {verdict}"),
    "measured": ("Measured on the hosts:", "Mesuré sur les hôtes :"),
    "missing": ("What is missing:", "Ce qui manque :"),
    "hint": ("Hint:", "Piste :"),
    "graded": ("Graded: {file}", "Corrigé : {file}"),
    "running": ("Running: {command}", "Lancement : {command}"),
    "reference": ("(the reference solution)", "(la solution de référence)"),
    # bad input
    "usage_step": (
        "STEP must be one of 0-9 or challenge, got {value!r}.",
        "STEP doit valoir 0 à 9 ou challenge, reçu {value!r}.",
    ),
    "no_file": ("FILE {file}: no such file.", "FILE {file} : fichier introuvable."),
    "not_a_file": ("FILE {file}: not a regular file.", "FILE {file} : ce n'est pas un fichier."),
    "not_yaml": (
        "FILE {file} is not YAML: {reason}",
        "FILE {file} n'est pas du YAML : {reason}",
    ),
    "not_playbook": (
        "FILE {file} is not a playbook: {reason}",
        "FILE {file} n'est pas un playbook : {reason}",
    ),
    "why_empty": ("it is empty", "il est vide"),
    "why_not_list": (
        "a playbook is a list of plays (each starting with '- name:' and 'hosts:'), this is a {kind}",
        "un playbook est une liste de plays (chacun commence par « - name: » et « hosts: »), ceci est un(e) {kind}",
    ),
    "why_no_hosts": (
        "play {index} has no 'hosts:' (is it a task list? tasks go under 'tasks:' of a play)",
        "le play {index} n'a pas de « hosts: » (est-ce une liste de tâches ? elles vont sous « tasks: » d'un play)",
    ),
    "no_lab_host": (
        "FILE {file} targets no lab host: hosts {patterns} match none of {lab} in {inventory}.",
        "FILE {file} ne vise aucun hôte du lab : hosts {patterns} ne désigne aucun de {lab} dans {inventory}.",
    ),
    "no_inventory": (
        "INVENTORY {inventory}: no such file or directory.",
        "INVENTORY {inventory} : fichier ou répertoire introuvable.",
    ),
    "inventory_no_lab": (
        "INVENTORY {inventory} has no host in group lab.",
        "INVENTORY {inventory} n'a aucun hôte dans le groupe lab.",
    ),
    "not_adhoc": (
        "FILE {file} must hold one ad hoc command starting with 'ansible ' (step {step}), got: {line!r}",
        "FILE {file} doit contenir une commande ad hoc commençant par « ansible » (étape {step}), reçu : {line!r}",
    ),
    "unreachable": (
        "The lab hosts did not answer: {reason}. Is the lab up (make lab, then INVENTORY=inventories/incus.yml)?",
        "Les hôtes du lab ne répondent pas : {reason}. Le lab est-il lancé (make lab, puis INVENTORY=inventories/incus.yml) ?",
    ),
    "internal": (
        "The checker itself failed ({kind}: {reason}); the run's output is above.",
        "Le correcteur lui-même a échoué ({kind} : {reason}) ; la sortie du lancement est au-dessus.",
    ),
    "run_failed": (
        "ansible-playbook stopped before the end (rc {rc}): {reason}",
        "ansible-playbook s'est arrêté avant la fin (rc {rc}) : {reason}",
    ),
    "adhoc_failed": (
        "The ad hoc command failed (rc {rc}): {reason}",
        "La commande ad hoc a échoué (rc {rc}) : {reason}",
    ),
}


def typeset(text: str) -> str:
    """French spacing: a no-break space before ':' and inside « », a narrow one before ; ! ?
    (outside `code`)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        part = re.sub(r" :", "\u00a0:", parts[i])
        part = re.sub(r" ([;!?])", "\u202f\\1", part)
        parts[i] = part.replace("« ", "«\u00a0").replace(" »", "\u00a0»")
    return "`".join(parts)


def french() -> bool:
    lang = os.environ.get("LAB_LANG") or os.environ.get("LANG") or ""
    return lang.lower().startswith("fr")


def say(key: str, **fields: Any) -> str:
    """The sentence for `key` in the trainee's language, with its fields filled."""
    english, french_text = TEXT[key]
    return typeset(french_text.format(**fields)) if french() else english.format(**fields)


def both(english: str, french_text: str, **fields: Any) -> str:
    """A one-off sentence given in both languages (step graders use it for their findings)."""
    return typeset(french_text.format(**fields)) if french() else english.format(**fields)
