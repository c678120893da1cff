# Step 2, right: the lab's command (its -P 5 does nothing without -B).
ansible all -m async_status -a "jid=<JOB_ID>" -P 5 -i host1, -c community.general.incus
