# Étape 1 – Exécution asynchrone en ad hoc / Step 1 - an ad hoc command in the background
# Copiez ce fichier dans exercises/answers/step1.sh et complétez la commande (une seule ligne).
# Copy this file to exercises/answers/step1.sh and complete the command (one line).
# À COMPLÉTER / TO DO : en arrière-plan, limite 3600 s (-B), sans attendre (-P)
#                       in the background, 3600 s limit (-B), without waiting (-P)
ansible all -B ___ -P ___ -a "sleep 600"
