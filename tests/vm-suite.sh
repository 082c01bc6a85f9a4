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
# Forbidden user namespaces are named (this changes a global sysctl: only in the throw-away VM).
sandbox=${SANDBOX_BIN:?run-all.sh sets SANDBOX_BIN}
if [[ -x $sandbox ]]; then
  sysctl -qw user.max_user_namespaces=0
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$sandbox" run -- true 2>&1); rc=$?
  sysctl -qw user.max_user_namespaces=10000
  if [[ $rc == 125 && $out == *"forbidden by sysctl user.max_user_namespaces=0"* ]]; then
    echo "forbidden user namespaces: named ($out)"
  else
    echo "FAIL: forbidden user namespaces not named: rc=$rc $out"; status=1
  fi
else
  echo "FAIL: no sandbox binary at $sandbox"; status=1
fi
"$here/leftovers.sh" /tmp/mountinfo.before || status=1
exit $status
