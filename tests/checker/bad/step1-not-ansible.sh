sleep 600 &
