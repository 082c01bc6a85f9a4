#!/usr/bin/env bash
# Runs inside the cgroup-v2 VM (see tests/run-all.sh): every test binary given, then the
# leftover check. Prints where this mode put the process, so logs show which mode ran.
set -u
here=$(cd "$(dirname "$0")" && pwd)
echo "== cgroup v2 VM, mode ${SANDBOX_VM_MODE:-?}: kernel $(uname -r), my cgroup $(cat /proc/self/cgroup)"
cat /proc/self/mountinfo > /tmp/mountinfo.before
status=0
for bin in "$@"; do
  echo "== $(basename "$bin")"
  "$bin" --test-threads=2 || status=1
done
"$here/leftovers.sh" /tmp/mountinfo.before || status=1
exit $status
