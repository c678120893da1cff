#!/bin/sh
# A shell whose `echo ~...` prints nothing, as `incus exec` sometimes does under load
# (docs/known-issues.md); every other command runs as usual.
case "$2" in
  "echo ~"*) exit 0 ;;
esac
exec /bin/sh "$@"
