# Step 1, right (short): in the background, no waiting.
ansible all -i host1, -c community.general.incus -B 120 -P 0 -a "sleep 60"
