# Étape 2 – Suivi de la tâche async / Step 2 - follow the async job
# Copiez ce fichier dans exercises/answers/step2.sh et complétez la commande (une seule ligne).
# Copy this file to exercises/answers/step2.sh and complete the command (one line).
# Laissez <JOB_ID> tel quel : le correcteur lance une tâche et met son identifiant à la place.
# Leave <JOB_ID> as it is: the checker starts a job and puts its id in its place.
# À COMPLÉTER / TO DO : le module qui lit l'état d'une tâche async / the module that reads an async job's state
ansible host1 -m ___ -a "jid=<JOB_ID>"
