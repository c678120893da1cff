# Step 2, wrong: reads the job file by hand instead of asking async_status.
ansible host1 -m ansible.builtin.command -a "cat ~/.ansible_async/<JOB_ID>"
