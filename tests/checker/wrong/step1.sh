# Step 1, wrong: -P 2 polls every 2 s, so the command waits for the job's end.
ansible all -B 60 -P 2 -a "sleep 3"
